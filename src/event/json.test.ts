import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExactNumber, parseJson, stringifyJson, containsExact } from './json.ts';

describe('lossless JSON', () => {
  it('keeps 64-bit integers exact through parse and stringify', () => {
    const text = '{"evt.time":1767258001000000123,"max":18446744073709551615,"neg":-9223372036854775808}';
    const value = parseJson(text) as Record<string, ExactNumber>;
    assert.ok(value['evt.time'] instanceof ExactNumber);
    assert.equal(value['evt.time'].toBigInt(), 1767258001000000123n);
    assert.equal(value.max!.toBigInt(), 18446744073709551615n);
    assert.equal(stringifyJson(value), text);
  });

  it('re-emits non-canonical number text byte for byte (1.0, 1e3, -0)', () => {
    const text = '{"a":1.0,"b":1e3,"c":-0,"d":2.5,"e":12,"f":0.30000000000000004}';
    const value = parseJson(text);
    assert.equal(stringifyJson(value), text);
    const obj = value as Record<string, unknown>;
    assert.equal(obj.d, 2.5);
    assert.equal(obj.e, 12);
    assert.ok(obj.a instanceof ExactNumber);
  });

  it('does not touch digits inside strings, including escaped quotes', () => {
    const text = '{"s":"1767258001000000123","t":"a\\"1767258001000000123\\"","n":[1767258001000000123]}';
    const value = parseJson(text) as Record<string, unknown>;
    assert.equal(value.s, '1767258001000000123');
    assert.equal(value.t, 'a"1767258001000000123"');
    assert.ok(Array.isArray(value.n) && value.n[0] instanceof ExactNumber);
    assert.equal(stringifyJson(value), text);
  });

  it('rejects malformed numbers and documents as JSON.parse does', () => {
    for (const bad of [
      '{"a":1.2.3}',
      '{"a":12345678901234567890x}',
      '{"a":01}',
      '{"a":"x',
      '{"a":1e}',
      '[--1]',
    ]) {
      assert.throws(() => parseJson(bad), SyntaxError, bad);
    }
  });

  it('cannot be fooled by a string that imitates the internal mark', () => {
    const value = parseJson('{"a":"\uE000abc#123","b":12345678901234567890}') as Record<string, unknown>;
    assert.equal(value.a, '\uE000abc#123');
    assert.ok(value.b instanceof ExactNumber);
  });

  it('containsExact finds nested exact numbers', () => {
    assert.equal(containsExact(parseJson('{"a":{"b":[1,2,3]}}')), false);
    assert.equal(containsExact(parseJson('{"a":{"b":[1,99999999999999999]}}')), true);
  });
});

describe('lossless JSON limits', () => {
  it('refuses documents nested deeper than MAX_DEPTH', async () => {
    const { MAX_DEPTH } = await import('./json.ts');
    const ok = '['.repeat(MAX_DEPTH) + ']'.repeat(MAX_DEPTH);
    assert.doesNotThrow(() => parseJson(ok));
    const deep = '{"a":' + '['.repeat(MAX_DEPTH) + ']'.repeat(MAX_DEPTH) + '}';
    assert.throws(() => parseJson(deep), /nested deeper than 64/);
    assert.throws(() => parseJson('['.repeat(100_000)), /nested deeper/);
  });

  it("reads a lone surrogate escape as U+FFFD, in keys too, as Go's decoder (two such keys are one, the last wins)", () => {
    const value = parseJson(
      '{"\\ud800":"first","\\udbff":"second","s":"a\\udc00b","pair":"\\ud83d\\ude00","list":["\\ud800",{"\\udfff":1}],"kept":"\\\\ud800","__proto__":{"n":12345678901234567890}}',
    ) as Record<string, unknown>;
    assert.deepEqual(Object.keys(value), ['\uFFFD', 's', 'pair', 'list', 'kept', '__proto__']);
    assert.equal(value['\uFFFD'], 'second');
    assert.equal(value.s, 'a\uFFFDb');
    assert.equal(value.pair, '😀');
    assert.deepEqual(value.list, ['\uFFFD', { '\uFFFD': 1 }]);
    assert.equal(value.kept, '\\ud800', 'an escaped backslash then "ud800" is text');
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.equal(
      stringifyJson(Object.getOwnPropertyDescriptor(value, '__proto__')!.value),
      '{"n":12345678901234567890}',
    );
  });
});
