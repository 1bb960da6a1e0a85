import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseFalcoEvent } from './falco-event.ts';
import { toSidekickJson, goTime } from './sidekick-json.ts';

describe("Falcosidekick's JSON layout", () => {
  it('orders keys as its struct, sorts output_fields, omits empty tags and hostname', () => {
    const e = parseFalcoEvent(
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"o","priority":"info","rule":"r","time":"2001-01-01T01:10:00Z","output_fields":{"z":1,"a":{"y":true,"b":null}},"tags":[]}',
    );
    assert.equal(
      toSidekickJson(e),
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"o","priority":"Informational","rule":"r","time":"2001-01-01T01:10:00Z","output_fields":{"a":{"b":null,"y":true},"z":1},"source":"syscalls"}',
    );
  });

  it("escapes <, >, & and U+2028 as Go's encoder does, keeps number text", () => {
    const e = parseFalcoEvent(
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"a<b>&c\u2028","priority":"Debug","rule":"r","time":"2026-01-01T00:00:00.120000000Z","output_fields":{"evt.time":1767225600120000000,"f":1.50},"tags":["b","a"],"hostname":"h"}',
    );
    assert.equal(
      toSidekickJson(e),
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"a\\u003cb\\u003e\\u0026c\\u2028","priority":"Debug","rule":"r","time":"2026-01-01T00:00:00.12Z","output_fields":{"evt.time":1767225600120000000,"f":1.50},"source":"syscalls","tags":["b","a"],"hostname":"h"}',
    );
  });

  it("prints time as Go's RFC3339Nano", () => {
    assert.equal(goTime('2026-01-01T00:00:00.000000000Z'), '2026-01-01T00:00:00Z');
    assert.equal(goTime('2026-01-01T00:00:00.428114280Z'), '2026-01-01T00:00:00.42811428Z');
    assert.equal(goTime('2026-01-01T01:00:00.5+01:00'), '2026-01-01T01:00:00.5+01:00');
    assert.equal(goTime('2026-01-01T00:00:00+00:00'), '2026-01-01T00:00:00Z');
  });
});

describe("Falcosidekick's JSON layout, unusual values", () => {
  it('writes the same bytes through the fast and the slow writer', async () => {
    const { generateEvents } = await import('../../test/helpers/events.ts');
    for (const line of generateEvents(300, { edgeCases: true, seed: 3 })) {
      const e = parseFalcoEvent(line);
      const fast = toSidekickJson(e);
      // A lone surrogate forces the slow writer; compare it with the fast one's output otherwise.
      const slow = toSidekickJson({ ...e, output: e.output + '\ud800' });
      assert.equal(slow.replace('\\ufffd"', '"').replace(/\ufffd"/, '"'), fast);
    }
  });

  it('sorts integer-like keys as Go does and writes U+FFFD for lone surrogates', () => {
    const e = parseFalcoEvent(
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"x\\ud800","priority":"Debug","rule":"r","time":"2026-01-01T00:00:00Z","output_fields":{"9":1,"10":2,"b":{"2":true,"a":[{"z":1,"y":2}]}}}',
    );
    assert.equal(
      toSidekickJson(e),
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"x\ufffd","priority":"Debug","rule":"r","time":"2026-01-01T00:00:00Z","output_fields":{"10":2,"9":1,"b":{"2":true,"a":[{"y":2,"z":1}]}},"source":"syscalls"}',
    );
  });

  it('keeps fields named __proto__ as keys, as Go does', () => {
    const e = parseFalcoEvent(
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"x","priority":"Debug","rule":"r","time":"2026-01-01T00:00:00Z","source":"s","output_fields":{"a":1,"__proto__":{"x":1},"n":{"__proto__":"v"}}}',
    );
    assert.equal(
      toSidekickJson(e),
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"x","priority":"Debug","rule":"r","time":"2026-01-01T00:00:00Z","output_fields":{"__proto__":{"x":1},"a":1,"n":{"__proto__":"v"}},"source":"s"}',
    );
  });
});

describe("Falcosidekick's JSON layout: key order beyond the BMP", () => {
  it('sorts keys by UTF-8 bytes as encoding/json does', () => {
    const e = parseFalcoEvent(
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"o","priority":"info","rule":"r","time":"2001-01-01T01:10:00Z","output_fields":{"\\ud83d\\ude00":1,"\\ue000":{"\\ud83d\\ude00":2,"\\ue000":3}}}',
    );
    assert.equal(
      toSidekickJson(e),
      '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11","output":"o","priority":"Informational","rule":"r","time":"2001-01-01T01:10:00Z","output_fields":{"\ue000":{"\ue000":3,"\u{1F600}":2},"\u{1F600}":1},"source":"syscalls"}',
    );
  });
});
