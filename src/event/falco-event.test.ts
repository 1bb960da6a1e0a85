import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseFalcoEvent,
  toFalcoEvent,
  EventError,
  timeToNanos,
  normalizeTime,
  testEvent,
} from './falco-event.ts';
import { ExactNumber, parseJson } from './json.ts';
import { toSidekickJson } from './sidekick-json.ts';
import { generateEvents } from '../../test/helpers/events.ts';

const modern =
  '{"hostname":"node-a","output":"09:00:01.000000123: Notice A shell was spawned","output_fields":{"container.id":"0123456789ab","evt.time":1767258001000000123,"k8s.ns.name":"shop","k8s.pod.name":null,"proc.tty":34816,"user.loginuid":-1,"container.privileged":false,"ka.req.pod.containers.image":["nginx","busybox"]},"priority":"Notice","rule":"Terminal shell in container","source":"syscall","tags":["T1059","container"],"time":"2026-01-01T09:00:01.000000123Z"}';

describe('Falco event parser', () => {
  it('parses a modern (0.39+) alert with every value type', () => {
    const e = parseFalcoEvent(modern);
    assert.equal(e.priority, 'Notice');
    assert.equal(e.rule, 'Terminal shell in container');
    assert.equal(e.time, '2026-01-01T09:00:01.000000123Z');
    assert.equal(e.hostname, 'node-a');
    assert.deepEqual(e.tags, ['T1059', 'container']);
    assert.equal(e.output_fields['k8s.pod.name'], null);
    assert.equal(e.output_fields['container.privileged'], false);
    assert.deepEqual(e.output_fields['ka.req.pod.containers.image'], ['nginx', 'busybox']);
    assert.equal((e.output_fields['evt.time'] as ExactNumber).toBigInt(), 1767258001000000123n);
    assert.match(e.uuid, /^[0-9a-f-]{36}$/);
  });

  it('parses the 0.38-and-earlier layout (output_fields appended last, with a space)', () => {
    const old =
      '{"output":"12:00:00.000000001: Warning x","priority":"Warning","rule":"R","source":"syscall","tags":[],"time":"2023-05-01T12:00:00.000000001Z", "output_fields": {"evt.time":1682942400000000001,"proc.name":"sh"}}';
    const e = parseFalcoEvent(old);
    assert.equal((e.output_fields['evt.time'] as ExactNumber).text, '1682942400000000001');
    assert.deepEqual(e.tags, []);
  });

  it("accepts Falco versions without hostname, source or tags (defaults: Falcosidekick's syscalls, no tags)", () => {
    const e = parseFalcoEvent(
      '{"output":"x","priority":"Error","rule":"R","time":"2019-01-01T00:00:00.5Z","output_fields":{"a":1}}',
    );
    assert.equal(e.source, 'syscalls');
    assert.deepEqual(e.tags, []);
    assert.equal(e.hostname, undefined);
  });

  it('accepts an event without output or output_fields (json_include_* off)', () => {
    const e = parseFalcoEvent('{"priority":"Debug","rule":"R","time":"2026-01-01T00:00:00Z"}');
    assert.equal(e.output, '');
    assert.deepEqual(e.output_fields, {});
  });

  it('normalizes priorities in any case and info', () => {
    const cases: [string, string][] = [
      ['EMERGENCY', 'Emergency'],
      ['alert', 'Alert'],
      ['CrItIcAl', 'Critical'],
      ['error', 'Error'],
      ['WARNING', 'Warning'],
      ['notice', 'Notice'],
      ['informational', 'Informational'],
      ['info', 'Informational'],
      ['INFO', 'Informational'],
      ['debug', 'Debug'],
      // Go's strings.ToLower maps U+0130 to "i": Falcosidekick (8807ab7) accepts these and posts
      // "priority":"Informational" / "Critical" (checked side by side).
      ['\u0130nfo', 'Informational'],
      ['cr\u0130t\u0130cal', 'Critical'],
    ];
    for (const [raw, expected] of cases) {
      const e = toFalcoEvent({ priority: raw, rule: 'r', time: '2026-01-01T00:00:00Z' });
      assert.equal(e.priority, expected, raw);
    }
  });

  it('rejects bad priorities, missing required keys and wrong types with a named problem', () => {
    const base = { priority: 'Notice', rule: 'r', time: '2026-01-01T00:00:00Z' };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...base, priority: 'warn' }, /unknown priority "warn"/],
      [{ ...base, priority: 3 }, /"priority" must be a string/],
      [{ ...base, priority: '' }, /missing "priority"/],
      [{ rule: 'r', time: base.time }, /missing "priority"/],
      [{ priority: 'Notice', time: base.time }, /missing "rule"/],
      [{ priority: 'Notice', rule: 'r' }, /missing "time"/],
      [{ ...base, time: 'yesterday' }, /not an RFC 3339 timestamp/],
      [{ ...base, time: '2026-02-30T00:00:00Z' }, /not an RFC 3339/],
      [{ ...base, time: '2026-01-01T00:00:00' }, /not an RFC 3339/],
      [{ ...base, time: '0001-01-01T00:00:00Z' }, /not an RFC 3339/],
      [{ ...base, tags: 'a' }, /"tags" must be an array/],
      [{ ...base, tags: [1] }, /"tags" must be an array of strings/],
      [{ ...base, output_fields: [] }, /"output_fields" must be an object/],
      [{ ...base, hostname: 5 }, /"hostname" must be a string/],
    ];
    for (const [input, message] of cases) {
      assert.throws(
        () => toFalcoEvent(input),
        (err: unknown) => err instanceof EventError && message.test(err.message),
        JSON.stringify(input),
      );
    }
    assert.throws(() => toFalcoEvent([1]), /must be a JSON object/);
    // Falcosidekick (8807ab7) answers 200 to these and posts the event without `message`.
    for (const message of [5, true, { a: 1 }, ['x']]) {
      assert.equal(toFalcoEvent({ ...base, message }).message, undefined, JSON.stringify(message));
    }
    assert.throws(() => parseFalcoEvent('{"rule":'), /not valid JSON/);
  });

  it('keeps a valid incoming uuid and replaces an invalid one', () => {
    const uuid = '3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11';
    assert.equal(
      toFalcoEvent({ uuid, priority: 'Debug', rule: 'r', time: '2026-01-01T00:00:00Z' }).uuid,
      uuid,
    );
    const replaced = toFalcoEvent({
      uuid: 'nope',
      priority: 'Debug',
      rule: 'r',
      time: '2026-01-01T00:00:00Z',
    }).uuid;
    assert.notEqual(replaced, 'nope');
    assert.match(replaced, /^[0-9a-f]{8}-[0-9a-f]{4}-4/);
  });

  it('keeps nanoseconds of the time exactly', () => {
    assert.equal(timeToNanos('2026-01-01T09:00:01.000000123Z'), 1767258001000000123n);
    assert.equal(timeToNanos('2026-01-01T10:00:01.5+01:00'), 1767258001500000000n);
    assert.equal(normalizeTime('2026-01-01t09:00:01.000000123z'), '2026-01-01T09:00:01.000000123Z');
  });

  it("reads times as Falcosidekick's Go parser does", () => {
    const read: [string, string | undefined][] = [
      ['2026-11-29T08:00:00.1234567891Z', '2026-11-29T08:00:00.123456789Z'], // Go keeps 9 digits
      ['2026-11-29T08:00:00,5Z', '2026-11-29T08:00:00.5Z'],
      ['2026-11-29t08:00:00,123456789999+02:00', '2026-11-29T08:00:00.123456789+02:00'],
      ['0001-01-01T00:00:00.5Z', '0001-01-01T00:00:00.5Z'], // not the zero time
      ['2026-11-29T8:00:00.5Z', '2026-11-29T08:00:00.5Z'], // Go takes a one-digit hour
      ['2026-11-29T8:00:00Z', '2026-11-29T08:00:00Z'],
      ['2026-11-29T08:0:00Z', undefined], // not a one-digit minute
      ['0001-01-01T00:00:00.0000000001Z', undefined], // Go keeps 9 digits: the zero time
      ['2026-12-31T23:59:60Z', undefined], // Go refuses second 60
      ['2026-11-29T08:00:00+24:00', undefined],
      ['0001-01-01T00:00:00Z', undefined], // the zero time, however written
      ['0001-01-01T00:00:00.000Z', undefined],
      ['0000-12-31T23:00:00-01:00', undefined],
      ['0001-01-01T01:30:00+01:30', undefined],
    ];
    for (const [text, normal] of read) assert.equal(normalizeTime(text), normal, text);
    assert.equal(timeToNanos('2026-11-29T08:00:00.123456789Z') % 1_000_000_000n, 123456789n);
  });

  it('knows the length of every month, leap years included', () => {
    const valid = ['2024-02-29', '2000-02-29', '2026-01-31', '2026-04-30', '2026-12-31', '2026-02-28'];
    const invalid = ['2026-02-29', '1900-02-29', '2100-02-29', '2026-04-31', '2026-06-31', '2026-11-31'];
    for (const day of valid) assert.equal(normalizeTime(`${day}T00:00:00Z`), `${day}T00:00:00Z`, day);
    for (const day of invalid) assert.equal(normalizeTime(`${day}T00:00:00Z`), undefined, day);
  });

  it('forces source internal for the test rule, as Falcosidekick does', () => {
    const e = testEvent(new Date('2026-01-01T00:00:00Z'));
    assert.equal(e.source, 'internal');
    assert.equal(e.time, '2026-01-01T00:00:00Z');
    assert.equal(e.rule, 'Test rule');
  });

  it('parses every generated event and every edge case, with evt.time exact end to end', () => {
    const lines = generateEvents(2000, { edgeCases: true });
    let withTime = 0;
    for (const line of lines) {
      const e = parseFalcoEvent(line);
      const raw = JSON.parse(line.replace(/"evt\.time":(\d+)/, '"evt.time":"$1"')) as {
        output_fields: Record<string, unknown>;
      };
      const rawTime = raw.output_fields['evt.time'];
      if (typeof rawTime === 'string') {
        withTime++;
        assert.equal((e.output_fields['evt.time'] as ExactNumber).text, rawTime);
        // Byte-identical when re-emitted: the exact digits appear in the serialized event.
        assert.ok(toSidekickJson(e).includes(`"evt.time":${rawTime}`));
      }
    }
    assert.ok(withTime > 500, `expected many syscall events, got ${withTime}`);
  });

  it('round-trips each edge-case variant', () => {
    const lines = generateEvents(4000, { edgeCases: true, seed: 7 });
    const seen = {
      lowercase: 0,
      info: 0,
      noHost: 0,
      noTags: 0,
      unicode: 0,
      large: 0,
      nullPod: 0,
      bracket: 0,
      emptyOutput: 0,
    };
    for (const line of lines) {
      const raw = parseJson(line) as Record<string, unknown>;
      const e = parseFalcoEvent(line);
      const fields = raw.output_fields as Record<string, unknown>;
      if (typeof raw.priority === 'string' && raw.priority !== e.priority) {
        if (raw.priority === 'info') seen.info++;
        else seen.lowercase++;
        assert.equal(e.priority.toLowerCase(), raw.priority === 'info' ? 'informational' : raw.priority);
      }
      if (!('hostname' in raw)) {
        seen.noHost++;
        assert.equal(e.hostname, undefined);
      }
      if (!('tags' in raw)) {
        seen.noTags++;
        assert.equal(e.source, 'syscalls');
      }
      if (typeof fields['proc.cmdline'] === 'string' && fields['proc.cmdline'].includes('日本語')) {
        seen.unicode++;
        assert.equal(e.output_fields['proc.cmdline'], fields['proc.cmdline']);
      }
      if (typeof fields['fd.name'] === 'string' && fields['fd.name'].length > 5000) {
        seen.large++;
        assert.equal(e.output_fields['fd.name'], fields['fd.name']);
      }
      if (fields['k8s.pod.name'] === null) {
        seen.nullPod++;
        assert.equal(e.output_fields['k8s.pod.name'], null);
        assert.ok('k8s.pod.name' in e.output_fields);
      }
      if ('proc.aname[2]' in fields) {
        seen.bracket++;
        assert.deepEqual(e.output_fields['proc.aname[3]'], fields['proc.aname[3]']);
      }
      if (raw.output === '') {
        seen.emptyOutput++;
        assert.equal(e.output, '');
      }
    }
    for (const [kind, n] of Object.entries(seen)) assert.ok(n > 0, `edge case ${kind} not exercised`);
  });
});
