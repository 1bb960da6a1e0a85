import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeUtf8AsGo } from './go-utf8.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');

describe('decodeUtf8AsGo', () => {
  it("replaces each byte of an invalid or cut-short sequence with U+FFFD, as Go's decoder", () => {
    // What Falcosidekick (Go encoding/json) wrote for these bytes inside a JSON string, seen side by side.
    const cases: [string, string][] = [
      ['63 F0 9F 98 74', 'c\uFFFD\uFFFD\uFFFDt'], // Node: one U+FFFD for the three bytes
      ['E2 82', '\uFFFD\uFFFD'],
      ['F0 9F 41', '\uFFFD\uFFFDA'],
      ['80 80', '\uFFFD\uFFFD'],
      ['C0 AF', '\uFFFD\uFFFD'], // overlong
      ['ED A0 80', '\uFFFD\uFFFD\uFFFD'], // a surrogate
      ['FF FE', '\uFFFD\uFFFD'],
      ['F4 90 80 80', '\uFFFD\uFFFD\uFFFD\uFFFD'], // past U+10FFFF
    ];
    for (const [bytes, text] of cases) assert.equal(decodeUtf8AsGo(hex(bytes)), text, bytes);
  });

  it('decodes valid text as Node does, up to the last byte', () => {
    for (const text of ['', 'cat', 'é😀\u2028\uFFFD', 'x'.repeat(10_000)])
      assert.equal(decodeUtf8AsGo(Buffer.from(text, 'utf8')), text);
    assert.equal(
      decodeUtf8AsGo(Buffer.concat([Buffer.from('é😀'), hex('F0 9F'), Buffer.from('ok')])),
      'é😀\uFFFD\uFFFDok',
    );
  });
});
