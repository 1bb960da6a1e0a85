import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testEvent, type FalcoEvent } from '../event/falco-event.ts';
import { ExactNumber, type JsonObject } from '../event/json.ts';
import { DEDUP_MAX_KEYS, dedupKey, Deduplicator } from './dedup.ts';

function event(rule: string, outputFields: JsonObject = {}, output = 'out'): FalcoEvent {
  return {
    uuid: '00000000-0000-4000-8000-000000000000',
    output,
    priority: 'Warning',
    rule,
    time: '2026-01-01T09:00:01Z',
    output_fields: outputFields,
    source: 'syscall',
    tags: [],
  };
}

class FakeClock {
  t = 1_000;
  readonly now = (): number => this.t;
}

describe('Deduplicator', () => {
  it('drops duplicates inside the window and passes after it', () => {
    const clock = new FakeClock();
    const d = new Deduplicator({ window: 1_000, fields: ['proc.name'] }, clock.now);
    const e = event('r', { 'proc.name': 'bash' });
    const steps: [number, boolean][] = [
      [0, false], // first occurrence
      [1, true],
      [999, true], // window starts at the first occurrence: 999 ms later is inside
      [1_000, false], // exactly window ms later: passes and opens a new window
      [1_500, true],
      [2_000, false],
    ];
    for (const [at, duplicate] of steps) {
      clock.t = 1_000 + at;
      assert.equal(d.isDuplicate(e), duplicate, `at +${at} ms`);
    }
  });

  it("identifies Falcosidekick's test event by its uuid alone, whatever the fields", () => {
    const clock = new FakeClock();
    const d = new Deduplicator({ window: 60_000, fields: ['proc.name'] }, clock.now);
    const test = (uuid: string): FalcoEvent => ({ ...testEvent(), uuid });
    const first = test('00000000-0000-4000-8000-000000000001');
    assert.equal(d.isDuplicate(first), false);
    assert.equal(d.isDuplicate(test('00000000-0000-4000-8000-000000000002')), false, 'a new POST /test');
    assert.equal(d.isDuplicate({ ...first }), true, 'the same test event again');
    assert.equal(dedupKey(first, ['proc.name']), 'test:00000000-0000-4000-8000-000000000001');
  });

  it('a steady stream passes one event per window (duplicates do not extend it)', () => {
    const clock = new FakeClock();
    const d = new Deduplicator({ window: 100, fields: [] }, clock.now);
    let passed = 0;
    for (let i = 0; i < 1_000; i++) {
      clock.t = 1_000 + i * 10; // every 10 ms for 10 s
      if (!d.isDuplicate(event('r'))) passed++;
    }
    assert.equal(passed, 100);
  });

  it('tells keys apart by rule and by each configured field', () => {
    const clock = new FakeClock();
    const d = new Deduplicator({ window: 60_000, fields: ['proc.name', 'k8s.ns.name'] }, clock.now);
    const table: [FalcoEvent, boolean][] = [
      [event('r', { 'proc.name': 'bash', 'k8s.ns.name': 'a' }), false],
      [event('r', { 'proc.name': 'bash', 'k8s.ns.name': 'a', other: 'ignored' }, 'other output'), true],
      [event('r', { 'proc.name': 'bash', 'k8s.ns.name': 'b' }), false],
      [event('r', { 'proc.name': 'sh', 'k8s.ns.name': 'a' }), false],
      [event('r2', { 'proc.name': 'bash', 'k8s.ns.name': 'a' }), false],
      [event('r', { 'proc.name': 'bash' }), false], // absent ns
      [event('r', { 'proc.name': 'bash', 'k8s.ns.name': '' }), false], // '' is not absent
      [event('r', { 'proc.name': 'bash', 'k8s.ns.name': null }), false], // null is not '' either
      [event('r', { 'proc.name': 'bash', 'k8s.ns.name': null }), true],
      [event('r', { 'proc.name': 'bash' }), true],
    ];
    table.forEach(([e, duplicate], i) => assert.equal(d.isDuplicate(e), duplicate, `row ${i}`));
    assert.equal(d.size, 7);
  });

  it('without fields the key is rule + hostname + source + output', () => {
    const d = new Deduplicator({ window: 60_000, fields: [] }, new FakeClock().now);
    assert.equal(d.isDuplicate(event('r', { a: 1 }, 'x')), false);
    assert.equal(d.isDuplicate(event('r', { a: 2 }, 'x')), true);
    assert.equal(d.isDuplicate(event('r', {}, 'y')), false);
    assert.equal(d.isDuplicate(event('q', {}, 'x')), false);
    assert.equal(d.isDuplicate({ ...event('r', {}, 'x'), hostname: 'node-b' }), false);
    assert.equal(d.isDuplicate({ ...event('r', {}, 'x'), hostname: 'node-b' }), true);
    assert.equal(d.isDuplicate({ ...event('r', {}, 'x'), hostname: '' }), false, "'' is not absent");
    assert.equal(d.isDuplicate({ ...event('r', {}, 'x'), source: 'k8s_audit' }), false);
  });

  it('without fields, the time Falco starts its output with does not make every alert unique', () => {
    const d = new Deduplicator({ window: 60_000, fields: [] }, new FakeClock().now);
    const text = 'Notice A shell was spawned in a container (user=root container_id=abc)';
    assert.equal(d.isDuplicate(event('r', {}, `13:45:01.123456789: ${text}`)), false);
    assert.equal(d.isDuplicate(event('r', {}, `13:45:02.987654321: ${text}`)), true);
    assert.equal(d.isDuplicate(event('r', {}, `2026-11-28T13:45:03.000000001+0000: ${text}`)), true);
    assert.equal(d.isDuplicate(event('r', {}, `2026-11-28T13:45:03.5Z: ${text}`)), true);
    assert.equal(d.isDuplicate(event('r', {}, `13:45:04.1: Warning ${text}`)), false, 'another text');
  });

  it('without fields and without output text (json_include_output_property: false), the output fields tell events apart', () => {
    const d = new Deduplicator({ window: 60_000, fields: [] }, new FakeClock().now);
    let time = 1767258001000000000n;
    // Falco puts the fields of its output in output_fields, the leading %evt.time included.
    const shell = (cmdline: string, pod: string | null) =>
      event(
        'Terminal shell',
        {
          'evt.time': new ExactNumber(String((time += 1000n))),
          'evt.time.iso8601': `t${time}`,
          'proc.cmdline': cmdline,
          'k8s.pod.name': pod,
        },
        '',
      );
    assert.equal(d.isDuplicate(shell('bash -c id', 'web-1')), false);
    assert.equal(d.isDuplicate(shell('sh -c curl evil', 'web-2')), false, 'other fields: another alert');
    assert.equal(d.isDuplicate(shell('bash -c id', null)), false, 'null is a value of its own');
    assert.equal(d.isDuplicate(shell('bash -c id', 'web-1')), true);
    // The same fields in another order are the same event.
    assert.equal(
      d.isDuplicate(
        event('Terminal shell', { 'k8s.pod.name': 'web-2', 'proc.cmdline': 'sh -c curl evil' }, ''),
      ),
      true,
    );
    // evt.num, evt.rawtime… also differ per event; evt.type does not.
    const other = (fields: JsonObject) =>
      d.isDuplicate(event('Other', { 'evt.type': 'open', ...fields }, ''));
    assert.equal(other({ 'evt.num': 1, 'evt.rawtime': 5 }), false);
    assert.equal(other({ 'evt.num': 2, 'evt.rawtime': 6 }), true);
    assert.equal(other({ 'evt.type': 'execve', 'evt.num': 3 }), false);
  });

  it('hostname, source, priority and uuid in fields read the event itself', () => {
    const d = new Deduplicator({ window: 60_000, fields: ['proc.cmdline', 'hostname'] }, new FakeClock().now);
    const on = (host: string | undefined) => {
      const e = event('r', { 'proc.cmdline': 'sh -c id' });
      return host === undefined ? e : { ...e, hostname: host };
    };
    assert.equal(d.isDuplicate(on('node-a')), false);
    assert.equal(d.isDuplicate(on('node-b')), false, 'another host');
    assert.equal(d.isDuplicate(on('node-a')), true);
    assert.equal(d.isDuplicate(on(undefined)), false);
    assert.equal(d.isDuplicate(on(undefined)), true);
    const keys = ['source', 'priority', 'uuid'].map((f) => dedupKey(event('r'), [f]));
    assert.deepEqual(keys, [
      dedupKey(event('r', { x: 'syscall' }), ['x']),
      dedupKey(event('r', { x: 'Warning' }), ['x']),
      dedupKey(event('r', { x: '00000000-0000-4000-8000-000000000000' }), ['x']),
    ]);
    // A batch forwarded twice (an edge that lost the answer) is dropped by its uuids, other events not.
    const byId = new Deduplicator({ window: 60_000, fields: ['uuid'] }, new FakeClock().now);
    const withId = (uuid: string) => ({ ...event('r'), uuid });
    assert.equal(byId.isDuplicate(withId('6f0c7a2e-0000-4000-8000-000000000001')), false);
    assert.equal(byId.isDuplicate(withId('6f0c7a2e-0000-4000-8000-000000000002')), false);
    assert.equal(byId.isDuplicate(withId('6f0c7a2e-0000-4000-8000-000000000001')), true);
  });

  it('compares field values by string form, ExactNumber by text', () => {
    const d = new Deduplicator({ window: 60_000, fields: ['evt.time'] }, new FakeClock().now);
    assert.equal(d.isDuplicate(event('r', { 'evt.time': new ExactNumber('1767258001000000123') })), false);
    assert.equal(d.isDuplicate(event('r', { 'evt.time': new ExactNumber('1767258001000000124') })), false);
    assert.equal(d.isDuplicate(event('r', { 'evt.time': '1767258001000000123' })), true);
  });

  it('keys cannot be forged by values that imitate a boundary', () => {
    const fields = ['a', 'b'];
    const keys = [
      dedupKey(event('r', { a: 'x\u0000y', b: 'z' }), fields),
      dedupKey(event('r', { a: 'x', b: 'y\u0000z' }), fields),
      dedupKey(event('r', { a: '1:x', b: 'y' }), fields),
      dedupKey(event('r', { a: '', b: '-' }), fields),
      dedupKey(event('r', { b: '-' }), fields),
      dedupKey(event('r', { a: '-' }), fields),
      dedupKey(event('r', { a: null }), fields),
      dedupKey(event('r1', { a: ':x' }), fields),
    ];
    assert.equal(new Set(keys).size, keys.length);
  });

  it('long keys (stored as hashes) are recognized and stay distinct', () => {
    const d = new Deduplicator({ window: 60_000, fields: [] }, new FakeClock().now);
    const long = 'x'.repeat(10_000);
    assert.equal(d.isDuplicate(event('r', {}, long)), false);
    assert.equal(d.isDuplicate(event('r', {}, long)), true);
    assert.equal(d.isDuplicate(event('r', {}, long + 'y')), false);
  });

  it('evicts expired keys so memory follows the window', () => {
    const clock = new FakeClock();
    const d = new Deduplicator({ window: 100, fields: ['n'] }, clock.now);
    for (let i = 0; i < 50; i++) d.isDuplicate(event('r', { n: i }));
    assert.equal(d.size, 50);
    clock.t += 99;
    d.isDuplicate(event('r', { n: 'late' }));
    assert.equal(d.size, 51);
    clock.t += 1; // the first 50 are now window ms old
    d.isDuplicate(event('r', { n: 'later' }));
    assert.equal(d.size, 2);
  });

  it(`never holds more than ${DEDUP_MAX_KEYS} settled keys, evicting the oldest`, () => {
    const clock = new FakeClock();
    const d = new Deduplicator({ window: 3_600_000, fields: ['n'] }, clock.now);
    const total = DEDUP_MAX_KEYS + 5_000;
    for (let i = 0; i < total; i++) {
      clock.t += 0.001;
      assert.equal(d.isDuplicate(event('r', { n: i })), false);
      d.settled();
    }
    assert.equal(d.size, DEDUP_MAX_KEYS);
    // The newest keys are still remembered, the oldest were evicted (so they pass again).
    assert.equal(d.isDuplicate(event('r', { n: total - 1 })), true);
    assert.equal(d.isDuplicate(event('r', { n: 0 })), false);
    d.settled();
    assert.equal(d.size, DEDUP_MAX_KEYS);
  });

  it('honours a smaller cap', () => {
    const d = new Deduplicator({ window: 60_000, fields: ['n'] }, new FakeClock().now, 3);
    for (const n of [1, 2, 3, 4]) {
      d.isDuplicate(event('r', { n }));
      d.settled();
    }
    assert.equal(d.size, 3);
    assert.equal(d.isDuplicate(event('r', { n: 4 })), true);
    assert.equal(d.isDuplicate(event('r', { n: 2 })), true);
    assert.equal(d.isDuplicate(event('r', { n: 1 })), false); // evicted first
  });

  it('keys of a batch refused after others were taken meanwhile push no taken key out of a full table', () => {
    const d = new Deduplicator({ window: 60_000, fields: ['n'] }, new FakeClock().now, 3);
    for (const n of [1, 2, 3]) {
      d.isDuplicate(event('r', { n }));
      d.settled();
    }
    const refused = [4, 5].map((n) => ({ event: event('r', { n }), ticket: 0 }));
    for (const r of refused) r.ticket = d.remember(r.event)!; // waiting for the journal
    assert.equal(d.isDuplicate(event('r', { n: 6 })), false); // taken meanwhile: one key must go
    d.settled();
    for (const r of refused) {
      d.forget(r.event, r.ticket);
      d.settled();
    }
    assert.equal(d.size, 3);
    assert.equal(d.isDuplicate(event('r', { n: 1 })), false, 'key 1, the oldest, made room for 6');
    for (const n of [2, 3, 6]) assert.equal(d.isDuplicate(event('r', { n })), true, `key ${n} kept`);
  });

  it('a refused batch forgets only its own key, not one remembered since by a taken event', () => {
    const clock = new FakeClock();
    const d = new Deduplicator({ window: 100, fields: ['n'] }, clock.now);
    const x = event('r', { n: 'x' });
    const waiting = d.remember(x); // its batch waits for the journal longer than the window
    assert.ok(waiting);
    clock.t += 100;
    const taken = d.remember(x); // expired: remembered again, by an event that is taken
    assert.ok(taken !== undefined && taken !== waiting);
    d.settled();
    d.forget(x, waiting); // the first batch is refused
    d.settled();
    assert.equal(d.isDuplicate(x), true, 'the taken event still has its key');
  });

  it('a zero window never deduplicates and stores nothing', () => {
    const d = new Deduplicator({ window: 0, fields: [] }, new FakeClock().now);
    assert.equal(d.isDuplicate(event('r')), false);
    assert.equal(d.isDuplicate(event('r')), false);
    assert.equal(d.size, 0);
  });

  it('clear forgets everything', () => {
    const d = new Deduplicator({ window: 60_000, fields: [] }, new FakeClock().now);
    d.isDuplicate(event('r'));
    d.clear();
    assert.equal(d.size, 0);
    assert.equal(d.isDuplicate(event('r')), false);
  });

  it('uses a real clock by default', () => {
    const d = new Deduplicator({ window: 60_000, fields: [] });
    assert.equal(d.isDuplicate(event('r')), false);
    assert.equal(d.isDuplicate(event('r')), true);
  });
});
