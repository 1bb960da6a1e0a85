import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compareUtf8, sortUtf8 } from './utf8-order.ts';

// U+E000 is EE 80 80 in UTF-8, U+1F600 is F0 9F 98 80: Go puts U+E000 first; UTF-16 (D83D DE00) would not.
const PRIVATE_USE = '\uE000';
const EMOJI = '\u{1F600}';

describe("Go's string order (UTF-8 bytes)", () => {
  it('puts a character above U+FFFF after U+E000–U+FFFF, as its code point is', () => {
    assert.ok(compareUtf8(PRIVATE_USE, EMOJI) < 0);
    assert.ok(compareUtf8(EMOJI, PRIVATE_USE) > 0);
    assert.ok(compareUtf8('\uFFFF', EMOJI) < 0);
    assert.deepEqual(sortUtf8([`a${EMOJI}`, `a${PRIVATE_USE}`, 'a', 'B']), [
      'B',
      'a',
      `a${PRIVATE_USE}`,
      `a${EMOJI}`,
    ]);
  });

  it('agrees with the plain order everywhere else', () => {
    const words = [
      'b',
      'a',
      'ab',
      '',
      'é',
      'Z',
      '\u00ff',
      '\u4e2d',
      'a\u0000',
      EMOJI,
      `${EMOJI}x`,
      '\u{10000}',
    ];
    const byBytes = [...words].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual(sortUtf8([...words]), byBytes);
    assert.equal(compareUtf8('same', 'same'), 0);
    assert.ok(compareUtf8('a', 'ab') < 0);
  });
});
