import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openSqlite } from '../src/store/sqlite.ts';
import {
  FakeDestination,
  removeConfigDirs,
  tempConfig,
  deadLetterRows,
  failTimes,
  failWith,
  hang,
  makeEvents,
  deliveryEvents,
  metricValue,
  query,
  queuedUuids,
  sleep,
  startEngine,
  succeed,
  waitUntil,
  type Behaviour,
  type TestEngine,
} from './helpers/delivery.ts';
import type { EyrieConfig } from '../src/config/types.ts';
import { DeliveryEngine, FAILED_DESTINATION_HEALTH_WINDOW_MS } from '../src/delivery/engine.ts';
import {
  HttpStatusError,
  parseRetryAfter,
  PartialRejectionError,
  PermanentError,
  RetryableError,
} from '../src/delivery/errors.ts';
import { JournalUnavailableError, SqliteQueue } from '../src/delivery/journal.ts';
import { testEvent, type FalcoEvent } from '../src/event/falco-event.ts';
import { stringifyJson } from '../src/event/json.ts';
import { PRIORITIES } from '../src/event/priority.ts';
import { Metrics } from '../src/metrics/registry.ts';
import { warningsLogger } from './helpers/log-capture.ts';
import type { Logger } from 'pino';
import { lockJournalElsewhere } from './helpers/journal-lock.ts';

/** One destination entry of a native config (flow style); retry is fast by default. */
function dest(name: string, options: { type?: string; retry?: string; extra?: string } = {}): string {
  const type = options.type ?? 'stdout';
  const url = type === 'eyrie' ? ', url: "http://127.0.0.1:9/"' : '';
  const retry = `retry: { initial_interval: 5ms, max_interval: 20ms, jitter: 0${options.retry ? `, ${options.retry}` : ''} }`;
  return `  - { name: ${name}, type: ${type}${url}, ${retry}${options.extra ? `, ${options.extra}` : ''} }`;
}

/** A real config (every default resolved by the loader) in a fresh temp dir. */
function config(destinations: string[], delivery = 'shutdown_timeout: 200ms'): EyrieConfig {
  return tempConfig(
    `log: { level: silent }\ndelivery: { ${delivery} }\ndestinations:${destinations.length > 0 ? `\n${destinations.join('\n')}` : ' []'}\n`,
  );
}

/** Starts an engine whose destinations are fakes with these behaviours; closed when the test ends. */
function start(
  t: TestContext,
  cfg: EyrieConfig,
  behaviours: Record<string, Behaviour>,
  dataDir = cfg.storage.path,
  logger?: Logger,
): TestEngine {
  const fakes = Object.fromEntries(
    Object.entries(behaviours).map(([name, b]) => [name, new FakeDestination(name, b)]),
  );
  const te = startEngine(cfg, fakes, dataDir, logger);
  t.after(() => te.close());
  return te;
}

const http = (status: number, retryAfterMs?: number) => () =>
  new HttpStatusError(status, `status ${status}`, retryAfterMs);
const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
const uuids = (events: readonly FalcoEvent[]) => events.map((e) => e.uuid);

/**
 * Another connection to a test engine's journal that makes its event inserts fail, as a full or
 * broken disk would (`fail`), until `work` drops the trigger again.
 */
function journalWrites(t: TestContext, te: TestEngine) {
  const db = openSqlite(join(te.dataDir, 'eyrie.db'));
  t.after(() => db.close());
  return {
    fail: () =>
      db.exec(
        `CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END`,
      ),
    work: () => db.exec('DROP TRIGGER refuse'),
  };
}
const LONG_SHUTDOWN_MSG =
  'shutdown: still sending (sends in flight, and memory queues sent on until empty, until delivery.shutdown_timeout)';
const sorted = (xs: readonly string[]) => [...xs].sort();
const counts = (xs: readonly string[]) => {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
};

/** Asserts each uuid was delivered exactly once (and nothing else). */
function assertExactlyOnce(fake: FakeDestination, expected: readonly string[]): void {
  assert.deepEqual(sorted(fake.delivered), sorted(expected), `${fake.name}: delivered set`);
  for (const [uuid, n] of counts(fake.delivered))
    assert.equal(n, 1, `${fake.name}: ${uuid} delivered ${n} times`);
}

/** Starts a new engine on `cfg`'s data dir whose `name` succeeds; asserts it delivers `events` exactly once. */
async function redeliveredOnce(
  t: TestContext,
  cfg: EyrieConfig,
  name: string,
  events: readonly FalcoEvent[],
): Promise<void> {
  const next = start(t, cfg, { [name]: succeed });
  const fake = next.fakes[name]!;
  await waitUntil(
    () => fake.delivered.length >= events.length,
    3000,
    () => `${fake.delivered.length}/${events.length}`,
  );
  await sleep(50);
  assertExactlyOnce(fake, uuids(events));
}

/** Events of identical serialized size (one template, fresh uuids of the same length). */
function uniformEvents(count: number): FalcoEvent[] {
  const base = makeEvents(1, 3)[0]!;
  return Array.from({ length: count }, () => ({ ...base, uuid: randomUUID() }));
}

describe('DeliveryEngine', { timeout: 240_000 }, () => {
  after(removeConfigDirs);

  describe('journal and delivery', () => {
    it('delivers every event exactly once, and has committed it to the journal when route() resolves', async (t) => {
      const cfg = config(
        [dest('ok'), dest('dead', { extra: 'queue: { concurrency: 1 }' })],
        'shutdown_timeout: 50ms',
      );
      const te = start(t, cfg, { ok: succeed, dead: hang });
      const events = makeEvents(100, 7);
      // Ten concurrent route() calls: one group commit, every promise resolved only after it.
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          Promise.resolve(te.engine.route(events.slice(i * 10, i * 10 + 10))),
        ),
      );
      // Read through another connection at once: every event is on disk for the dead destination.
      assert.deepEqual(sorted(queuedUuids(te.dataDir, 'dead')), sorted(uuids(events)));
      const metrics0 = await te.metrics.text();
      assert.equal(
        metricValue(metrics0, 'eyrie_journal_commit_seconds_count'),
        1,
        'the ten calls share one group commit',
      );

      await waitUntil(
        () => te.fakes.ok!.delivered.length >= 100,
        5000,
        () => `${te.fakes.ok!.delivered.length}/100 delivered`,
      );
      await sleep(50);
      assertExactlyOnce(te.fakes.ok!, uuids(events));
      assert.deepEqual(queuedUuids(te.dataDir, 'ok'), [], 'delivered entries leave the queue');
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'ok', 'success'), 100);
      assert.equal(metricValue(metrics, 'eyrie_queue_depth', { destination: 'ok' }), 0);
      assert.equal(metricValue(metrics, 'eyrie_queue_depth', { destination: 'dead' }), 100);
      assert.equal(
        metricValue(metrics, 'eyrie_routing_events_total', { destination: 'ok', decision: 'routed' }),
        100,
      );
    });

    it('a restart resumes every queue where it stopped (durability across restart)', async (t) => {
      const cfg = config([dest('a'), dest('b'), dest('c')], 'shutdown_timeout: 500ms');
      const first = start(t, cfg, { a: failWith(http(503)), b: failWith(refused), c: succeed });
      const events = makeEvents(20, 8);
      await first.engine.route(events.slice(0, 10));
      await first.engine.route(events.slice(10));
      const attempted = (f: FakeDestination) => events.every((e) => f.attemptsOf(e.uuid) >= 1);
      await waitUntil(
        () =>
          attempted(first.fakes.a!) && attempted(first.fakes.b!) && first.fakes.c!.delivered.length === 20,
        5000,
        () => 'every event attempted on a and b, delivered on c',
      );
      await first.close();
      assert.ok(first.fakes.a!.closed, 'close() closes the destinations');

      // Still queued on disk, attempts kept; nothing left for the destination that succeeded.
      for (const name of ['a', 'b']) {
        assert.deepEqual(
          sorted(queuedUuids(cfg.storage.path, name)),
          sorted(uuids(events)),
          `${name} queue after close`,
        );
        const rows = query<{ attempts: number; leased: number; last_error: string | null }>(
          cfg.storage.path,
          'SELECT attempts, leased, last_error FROM deliveries WHERE destination = ?',
          name,
        );
        assert.ok(
          rows.every((r) => r.attempts >= 1 && r.leased === 0 && r.last_error !== null),
          `${name}: attempts and errors persisted, nothing left leased`,
        );
      }
      assert.deepEqual(queuedUuids(cfg.storage.path, 'c'), []);

      const second = start(t, cfg, { a: succeed, b: succeed, c: succeed });
      await waitUntil(
        () => second.fakes.a!.delivered.length >= 20 && second.fakes.b!.delivered.length >= 20,
        5000,
        () =>
          `a ${second.fakes.a!.delivered.length}/20, b ${second.fakes.b!.delivered.length}/20 after restart`,
      );
      await sleep(100);
      assertExactlyOnce(second.fakes.a!, uuids(events));
      assertExactlyOnce(second.fakes.b!, uuids(events));
      assert.deepEqual(second.fakes.c!.sends, [], 'c had delivered everything before the restart');
      assert.equal(
        query<{ n: number }>(cfg.storage.path, 'SELECT count(*) AS n FROM events')[0]!.n,
        0,
        'no orphan events',
      );
    });
  });

  describe('retries and dead letters', () => {
    const retryable: { name: string; error: () => Error; reason: string }[] = [
      { name: 'HTTP 503', error: http(503), reason: '503' },
      { name: 'HTTP 429', error: http(429), reason: '429' },
      { name: 'HTTP 408', error: http(408), reason: '408' },
      { name: 'ECONNREFUSED', error: refused, reason: 'ECONNREFUSED' },
      { name: 'RetryableError', error: () => new RetryableError('broker unavailable'), reason: 'retryable' },
      {
        name: 'ETIMEDOUT',
        error: () => Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }),
        reason: 'timeout',
      },
    ];
    for (const c of retryable) {
      it(`retries ${c.name} until success, counting every attempt`, async (t) => {
        const te = start(t, config([dest('r')]), { r: failTimes(3, c.error) });
        const events = makeEvents(3, 9);
        await te.engine.route(events);
        await waitUntil(
          () => te.fakes.r!.delivered.length >= 3,
          5000,
          () => `${te.fakes.r!.delivered.length}/3 delivered`,
        );
        await sleep(30);
        assertExactlyOnce(te.fakes.r!, uuids(events));
        for (const e of events)
          assert.equal(te.fakes.r!.attemptsOf(e.uuid), 4, 'three failures, then success');
        const metrics = await te.metrics.text();
        assert.equal(deliveryEvents(metrics, 'r', 'retry', c.reason), 9);
        assert.equal(deliveryEvents(metrics, 'r', 'retry'), 9, 'no other reason');
        assert.equal(deliveryEvents(metrics, 'r', 'success'), 3);
        assert.equal(deliveryEvents(metrics, 'r', 'dead_letter'), 0);
        assert.deepEqual(deadLetterRows(te.dataDir, 'r'), []);
        assert.deepEqual(queuedUuids(te.dataDir, 'r'), []);
        const health = te.engine.health().find((h) => h.name === 'r')!;
        assert.equal(health.healthy, true, 'healthy again after a success');
      });
    }

    it('a destination that comes back is drained by every worker, not only the one whose probe got through', async (t) => {
      // Each failed probe pauses its worker (100 ms, 1 s, 10 s, 10 s: the backoff of 1 to 4 consecutive
      // failures). The first worker back finds the destination up; the others slept on for up to
      // max_interval (90 s with the defaults), draining a backlog at a quarter of the rate.
      const cfg = config([
        '  - { name: back, type: stdout, queue: { concurrency: 4 }, ' +
          'retry: { initial_interval: 100ms, multiplier: 10, max_interval: 10s, jitter: 0 } }',
      ]);
      let failures = 0;
      let maxInFlight = 0;
      const { logger, warnings: lines } = warningsLogger('info');
      const te = start(
        t,
        cfg,
        {
          back: async (_events, fake) => {
            if (failures < 4) {
              failures++;
              throw refused();
            }
            maxInFlight = Math.max(maxInFlight, fake.inFlight);
            await sleep(20);
          },
        },
        cfg.storage.path,
        logger,
      );
      await te.engine.route(makeEvents(200, 41));
      await waitUntil(
        () => maxInFlight >= 4,
        3000,
        () => `${maxInFlight} sends in flight at most, ${te.fakes.back!.delivered.length}/200 delivered`,
      );
      await waitUntil(
        () => te.fakes.back!.delivered.length >= 200,
        5000,
        () => `${te.fakes.back!.delivered.length}/200 delivered`,
      );
      assert.equal(te.engine.health().find((h) => h.name === 'back')!.healthy, true);
      const resumed = lines.filter((l) => /^delivery resumed/.test(String(l.msg)));
      assert.equal(resumed.length, 1, 'the end of the outage is logged once');
      assert.equal(resumed[0]!.failedSends, 4);
    });

    it('health names the journal while delivery results cannot be recorded (every delivered entry would be sent again)', async (t) => {
      const cfg = config([dest('ok')]);
      const te = start(t, cfg, { ok: succeed });
      const db = openSqlite(join(te.dataDir, 'eyrie.db'));
      t.after(() => db.close());
      // As an ack's statement journal with nowhere to go (a read-only root without /tmp).
      db.exec(
        `CREATE TRIGGER ioerror BEFORE DELETE ON deliveries BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`,
      );
      await te.engine.route(makeEvents(2, 47));
      await waitUntil(
        () => !te.engine.journalHealth().ok,
        5000,
        () => JSON.stringify(te.engine.journalHealth()),
      );
      assert.match(
        String(te.engine.journalHealth().detail),
        /cannot record delivery results \(disk I\/O error\): delivered entries are sent again when their lease expires/,
      );
      db.exec('DROP TRIGGER ioerror');
      await te.engine.route(makeEvents(1, 48));
      await waitUntil(
        () => te.engine.journalHealth().ok,
        5000,
        () => JSON.stringify(te.engine.journalHealth()),
      );
    });

    it('health gives the age of the oldest queued entry: a slow receiver fails nothing but falls behind', async (t) => {
      const cfg = config([dest('slow', { extra: 'queue: { concurrency: 1 }' }), dest('idle')]);
      const te = start(t, cfg, { slow: hang, idle: succeed });
      await te.engine.route(makeEvents(3, 43));
      await sleep(1100);
      const [slow, idle] = ['slow', 'idle'].map((n) => te.engine.health().find((h) => h.name === n)!);
      assert.equal(slow!.healthy, true, 'nothing failed');
      assert.equal(slow!.queued, 3);
      assert.ok(slow!.oldestAgeSeconds! >= 1 && slow!.oldestAgeSeconds! < 30, String(slow!.oldestAgeSeconds));
      assert.equal(idle!.queued, 0);
      assert.equal('oldestAgeSeconds' in idle!, false, 'no age for an empty queue');
    });

    it('logs the give-ups of a receiver refusing every event once a minute per reason, with a count', async (t) => {
      const cfg = config([dest('refusing')]);
      const { logger, warnings } = warningsLogger('error');
      // A permanent answer is not paced by a backoff: an expired token's 401 logged a line per event.
      const te = start(t, cfg, { refusing: failWith(http(401)) }, cfg.storage.path, logger);
      // Both clocks move together: the throttle reads the monotonic one, the queue the wall clock.
      let offset = 0;
      const perfNow = performance.now.bind(performance);
      const dateNow = Date.now.bind(Date);
      t.mock.method(performance, 'now', () => perfNow() + offset);
      t.mock.method(Date, 'now', () => dateNow() + offset);
      const givenUp = () => warnings.filter((w) => String(w.msg).startsWith('delivery given up'));
      const deadLetters = () => deadLetterRows(te.dataDir, 'refusing').length;
      await te.engine.route(makeEvents(20, 31));
      await waitUntil(
        () => deadLetters() >= 20,
        5000,
        () => `${deadLetters()}/20 dead letters`,
      );
      assert.equal(givenUp().length, 1, 'one line for twenty give-ups');
      const { reason, suppressed, suppressedEvents, msg } = givenUp()[0]!;
      // The way back, where the operator reads the failure (an expired token fixed in the config).
      assert.match(String(msg), /once the cause is fixed, eyrie dlq replay -d refusing sends them again/);
      assert.deepEqual(
        { reason, suppressed, suppressedEvents },
        {
          reason: 'permanent_401',
          suppressed: 0,
          suppressedEvents: 0,
        },
      );
      offset += 60_000;
      await te.engine.route(makeEvents(1, 32));
      await waitUntil(
        () => deadLetters() >= 21,
        5000,
        () => `${deadLetters()}/21 dead letters`,
      );
      assert.equal(givenUp().length, 2, 'a minute later');
      assert.equal(givenUp()[1]!.suppressed, 19);
      assert.equal(givenUp()[1]!.suppressedEvents, 19);
      t.mock.restoreAll();
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'refusing', 'dead_letter', 'permanent_401'), 21, 'each counted');
      await te.engine.route(makeEvents(2, 33));
      await waitUntil(
        () => deadLetters() >= 23,
        5000,
        () => `${deadLetters()}/23 dead letters`,
      );
      assert.equal(givenUp().length, 2, 'within the minute');
      await te.close();
      const last = givenUp().at(-1)!;
      assert.match(String(last.msg), /at shutdown/);
      assert.deepEqual([last.suppressed, last.suppressedEvents], [2, 2], 'told at shutdown');
    });

    it('honours Retry-After: the next attempt is not made before it', async (t) => {
      const firstAttemptFails =
        (error: () => Error): Behaviour =>
        (events, fake) => {
          if (fake.attemptsOf(events[0]!.uuid) === 1) throw error();
        };
      const cfg = config([dest('after429'), dest('retryable'), dest('plain429')]);
      const te = start(t, cfg, {
        after429: firstAttemptFails(http(429, 400)),
        retryable: firstAttemptFails(() => new RetryableError('throttled', { retryAfterMs: 300 })),
        plain429: firstAttemptFails(http(429)),
      });
      const [event] = makeEvents(1, 10);
      await te.engine.route([event!]);
      await waitUntil(
        () => Object.values(te.fakes).every((f) => f.delivered.length === 1),
        5000,
        () => 'each destination delivers after one retry',
      );
      const gap = (name: string) => {
        const [a, b] = te.fakes[name]!.attemptTimes(event!.uuid);
        return b! - a!;
      };
      assert.ok(
        gap('after429') >= 400,
        `HTTP 429 with Retry-After 400 ms: retried after ${gap('after429')} ms`,
      );
      assert.ok(gap('after429') < 1500, `but not much later (${gap('after429')} ms)`);
      assert.ok(
        gap('retryable') >= 300,
        `RetryableError retryAfterMs 300: retried after ${gap('retryable')} ms`,
      );
      assert.ok(
        gap('plain429') < 200,
        `without Retry-After the 5 ms backoff applies (${gap('plain429')} ms)`,
      );
    });

    it('a Retry-After longer than a timer can wait (30 days, the cap) is waited out, not turned into a busy loop', async (t) => {
      const cfg = config([dest('later', { retry: 'max_elapsed_time: 0' })], 'shutdown_timeout: 20ms');
      const month = 30 * 24 * 3600 * 1000;
      // `Retry-After: 999…9` (hundreds of digits) parses to the cap; an infinite value is cut there too.
      assert.equal(parseRetryAfter('9'.repeat(400)), month);
      assert.equal(parseRetryAfter('60'), 60_000);
      const te = start(t, cfg, { later: failWith(http(503, Number.POSITIVE_INFINITY)) });
      const overflows: Error[] = [];
      const onWarning = (w: Error) => {
        if (w.name === 'TimeoutOverflowWarning') overflows.push(w);
      };
      process.on('warning', onWarning);
      t.after(() => process.off('warning', onWarning));
      const [event] = makeEvents(1, 11);
      await te.engine.route([event!]);
      await sleep(500);
      assert.equal(te.fakes.later!.attemptsOf(event!.uuid), 1, 'one attempt, the next in 30 days');
      const due = query<{ due_at: number }>(te.dataDir, 'SELECT due_at FROM deliveries')[0]!.due_at;
      assert.ok(due - Date.now() > month - 60_000, `due in 30 days (${due - Date.now()} ms)`);
      assert.deepEqual(overflows, [], 'no timer was given more than 2^31 - 1 ms');
    });

    it('a Retry-After past max_elapsed_time gives the event up at once, and does not hold the worker', async (t) => {
      const cfg = config([
        dest('throttled', { retry: 'max_attempts: 0, max_elapsed_time: 10s', extra: 'fallback: spare' }),
        dest('spare', { extra: 'filter: { rules: ["no rule has this name"] }' }),
      ]);
      const hour = 3600 * 1000;
      const te = start(t, cfg, { throttled: failWith(http(429, hour)), spare: succeed });
      const events = makeEvents(2, 12);
      await te.engine.route([events[0]!]);
      await waitUntil(
        () => te.fakes.spare!.delivered.length === 1,
        5000,
        () => 'given up to the fallback',
      );
      assert.equal(te.fakes.throttled!.attemptsOf(events[0]!.uuid), 1);
      // The next event is tried at once, not an hour later.
      await te.engine.route([events[1]!]);
      await waitUntil(
        () => te.fakes.spare!.delivered.length === 2,
        5000,
        () => 'the next event is tried and given up too',
      );
      assert.deepEqual(queuedUuids(te.dataDir, 'throttled'), []);
    });

    it('a Retry-After of 0 ends the retries no sooner than no header does', async (t) => {
      // Attempts at 0, 100 and 200 ms: the third starts past the 150 ms budget, as the docs allow
      // (checked after each failure). Retry-After 0 asks for less than the backoff, so it changes nothing.
      const retry =
        'retry: { initial_interval: 100ms, max_interval: 100ms, multiplier: 1, jitter: 0, max_elapsed_time: 150ms }';
      const cfg = config([
        `  - { name: zero, type: stdout, ${retry} }`,
        `  - { name: none, type: stdout, ${retry} }`,
      ]);
      const te = start(t, cfg, { zero: failWith(http(503, 0)), none: failWith(http(503)) });
      const [event] = makeEvents(1, 14);
      await te.engine.route([event!]);
      await waitUntil(
        () =>
          deadLetterRows(te.dataDir, 'zero').length === 1 && deadLetterRows(te.dataDir, 'none').length === 1,
        5000,
        () => 'both given up',
      );
      assert.equal(te.fakes.none!.attemptsOf(event!.uuid), 3);
      assert.equal(te.fakes.zero!.attemptsOf(event!.uuid), 3);
    });

    it('a batch the receiver takes in part: refused events go to dead letters or the fallback, the rest count as delivered', async (t) => {
      const cfg = config([
        dest('dl', { type: 'eyrie', extra: 'batch: { max_events: 4, timeout: 50ms }' }),
        dest('fb', { type: 'eyrie', extra: 'batch: { max_events: 4, timeout: 50ms }, fallback: spare' }),
        dest('spare', { extra: 'filter: { rules: ["no rule has this name"] }' }),
      ]);
      const refuseSecond: Behaviour = () => {
        throw new PartialRejectionError([{ index: 1, message: 'rejected by the receiver: bad' }]);
      };
      const te = start(t, cfg, { dl: refuseSecond, fb: refuseSecond, spare: succeed });
      const events = makeEvents(4, 13);
      await te.engine.route(events);
      await waitUntil(
        () => deadLetterRows(te.dataDir, 'dl').length === 1 && te.fakes.spare!.delivered.length === 1,
        5000,
        () => 'one refused event each',
      );
      const batch = te.fakes.dl!.sends[0]!.uuids;
      assert.equal(batch.length, 4, 'one batch');
      const [row] = deadLetterRows(te.dataDir, 'dl');
      assert.equal(row!.uuid, batch[1]);
      assert.equal(row!.reason, 'permanent_rejected');
      assert.equal(row!.error, 'rejected by the receiver: bad');
      assert.deepEqual(te.fakes.spare!.delivered, [te.fakes.fb!.sends[0]!.uuids[1]]);
      assert.deepEqual(queuedUuids(te.dataDir, 'dl'), []);
      assert.deepEqual(queuedUuids(te.dataDir, 'fb'), []);
      const metrics = await te.metrics.registry.metrics();
      const outcome = (labels: Record<string, string>) =>
        metricValue(metrics, 'eyrie_delivery_events_total', labels);
      assert.equal(outcome({ destination: 'dl', outcome: 'success' }), 3);
      // The dead letters' reason, as `eyrie dlq list` shows it.
      assert.equal(outcome({ destination: 'dl', outcome: 'dead_letter', reason: 'permanent_rejected' }), 1);
      assert.equal(outcome({ destination: 'fb', outcome: 'fallback', reason: 'permanent_rejected' }), 1);
    });

    it('a batch with parts not delivered: only those are retried or given up, by their own error', async (t) => {
      const cfg = config([
        dest('split', { type: 'eyrie', extra: 'batch: { max_events: 5, timeout: 50ms }' }),
      ]);
      // The first send: event 1 refused, 2 and 3 not delivered (503), 4 too large (413), 0 delivered.
      const firstSendInParts: Behaviour = (events, fake) => {
        if (fake.sends.length > 1) return;
        throw new PartialRejectionError(
          [{ index: 1, message: 'rejected by the receiver: bad' }],
          [
            { indices: [2, 3], error: new HttpStatusError(503, 'status 503') },
            { indices: [4], error: new HttpStatusError(413, 'status 413') },
          ],
        );
      };
      const te = start(t, cfg, { split: firstSendInParts });
      const events = makeEvents(5, 35);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.split!.sends.length === 2 && deadLetterRows(te.dataDir, 'split').length === 2,
        5000,
        () => `${te.fakes.split!.sends.length} sends`,
      );
      const [first, second] = te.fakes.split!.sends;
      assert.equal(first!.uuids.length, 5, 'one batch');
      assert.deepEqual(second!.uuids, first!.uuids.slice(2, 4), 'only the events that got the 503, again');
      assert.deepEqual(sorted(te.fakes.split!.delivered), sorted([0, 2, 3].map((i) => first!.uuids[i]!)));
      assert.deepEqual(
        deadLetterRows(te.dataDir, 'split')
          .map((r) => [r.uuid, r.reason])
          .sort(),
        [
          [first!.uuids[1], 'permanent_rejected'],
          [first!.uuids[4], 'permanent_413'],
        ].sort(),
      );
      const text = await te.metrics.text();
      assert.equal(deliveryEvents(text, 'split', 'success'), 3, 'each delivered event counted once');
      assert.equal(deliveryEvents(text, 'split', 'retry', '503'), 2);
      assert.deepEqual(queuedUuids(te.dataDir, 'split'), []);
    });

    it('sends permanent failures to dead letters at once', async (t) => {
      const cases: { name: string; error: () => Error; reason: string }[] = [
        { name: 'p400', error: http(400), reason: '400' },
        { name: 'p404', error: http(404), reason: '404' },
        { name: 'p501', error: http(501), reason: '501' },
        { name: 'perm', error: () => new PermanentError('payload rejected'), reason: 'undeliverable' },
      ];
      const te = start(
        t,
        config(cases.map((c) => dest(c.name))),
        Object.fromEntries(cases.map((c) => [c.name, failWith(c.error)])),
      );
      const events = makeEvents(3, 11);
      await te.engine.route(events);
      await waitUntil(
        () => cases.every((c) => deadLetterRows(te.dataDir, c.name).length === 3),
        5000,
        () => 'three dead letters per destination',
      );
      await sleep(50);
      const metrics = await te.metrics.text();
      for (const c of cases) {
        const rows = deadLetterRows(te.dataDir, c.name);
        assert.deepEqual(sorted(rows.map((r) => r.uuid)), sorted(uuids(events)), c.name);
        for (const r of rows) {
          assert.equal(r.attempts, 1, `${c.name}: one attempt`);
          assert.equal(r.reason, `permanent_${c.reason}`);
          assert.equal(r.error, c.error().message);
        }
        for (const e of events)
          assert.equal(te.fakes[c.name]!.attemptsOf(e.uuid), 1, `${c.name}: never retried`);
        assert.deepEqual(queuedUuids(te.dataDir, c.name), []);
        assert.equal(deliveryEvents(metrics, c.name, 'dead_letter', `permanent_${c.reason}`), 3);
        assert.equal(deliveryEvents(metrics, c.name, 'retry'), 0);
        assert.equal(metricValue(metrics, 'eyrie_dead_letters', { destination: c.name }), 3);
        const health = te.engine.health().find((h) => h.name === c.name)!;
        assert.equal(health.deadLetters, 3);
        assert.equal(health.healthy, false, 'degraded right after its failures');
        assert.equal(health.lastError, c.error().message);
        const later = Date.now() + FAILED_DESTINATION_HEALTH_WINDOW_MS + 1;
        assert.equal(
          te.engine.health(later).find((h) => h.name === c.name)!.healthy,
          true,
          'nothing queued and no failure for the window: no longer degraded',
        );
      }
    });

    it('retry.permanent_statuses / retryable_statuses flip the classification', async (t) => {
      const cases: { name: string; retry: string; error: () => Error; dead: boolean; attempts: number }[] = [
        { name: 'perm503', retry: 'permanent_statuses: [503]', error: http(503), dead: true, attempts: 1 },
        {
          name: 'perm429',
          retry: 'permanent_statuses: [429]',
          error: http(429, 50),
          dead: true,
          attempts: 1,
        },
        { name: 'retry400', retry: 'retryable_statuses: [400]', error: http(400), dead: false, attempts: 3 },
        { name: 'retry501', retry: 'retryable_statuses: [501]', error: http(501), dead: false, attempts: 3 },
        {
          name: 'both',
          retry: 'retryable_statuses: [500], permanent_statuses: [500]',
          error: http(500),
          dead: true,
          attempts: 1,
        },
      ];
      const te = start(
        t,
        config(cases.map((c) => dest(c.name, { retry: c.retry }))),
        Object.fromEntries(cases.map((c) => [c.name, failTimes(2, c.error)])),
      );
      const [event] = makeEvents(1, 12);
      await te.engine.route([event!]);
      await waitUntil(
        () =>
          cases.every((c) =>
            c.dead
              ? deadLetterRows(te.dataDir, c.name).length === 1
              : te.fakes[c.name]!.delivered.length === 1,
          ),
        5000,
        () => 'every destination settled',
      );
      await sleep(50);
      for (const c of cases) {
        assert.equal(te.fakes[c.name]!.attemptsOf(event!.uuid), c.attempts, `${c.name}: attempts`);
        assert.equal(deadLetterRows(te.dataDir, c.name).length, c.dead ? 1 : 0, `${c.name}: dead letters`);
        assert.equal(te.fakes[c.name]!.delivered.length, c.dead ? 0 : 1, `${c.name}: delivered`);
      }
    });

    it('gives up when the retry budget is spent: max_attempts, max_elapsed_time', async (t) => {
      const cfg = config([
        dest('attempts', { retry: 'max_attempts: 3' }),
        dest('elapsed', { retry: 'max_elapsed_time: 150ms' }),
      ]);
      const te = start(t, cfg, { attempts: failWith(http(503)), elapsed: failWith(refused) });
      const events = makeEvents(2, 13);
      await te.engine.route(events);
      await waitUntil(
        () =>
          deadLetterRows(te.dataDir, 'attempts').length === 2 &&
          deadLetterRows(te.dataDir, 'elapsed').length === 2,
        5000,
        () => 'both destinations dead-lettered both events',
      );
      const settled = { attempts: te.fakes.attempts!.sends.length, elapsed: te.fakes.elapsed!.sends.length };
      await sleep(100);
      assert.equal(te.fakes.attempts!.sends.length, settled.attempts, 'no attempt after the dead letter');
      assert.equal(te.fakes.elapsed!.sends.length, settled.elapsed, 'no attempt after the dead letter');

      for (const r of deadLetterRows(te.dataDir, 'attempts')) {
        assert.equal(r.attempts, 3);
        assert.equal(te.fakes.attempts!.attemptsOf(r.uuid), 3);
        assert.equal(r.reason, 'retries_exhausted');
        assert.match(r.error, /HTTP 503/);
      }
      for (const r of deadLetterRows(te.dataDir, 'elapsed')) {
        const times = te.fakes.elapsed!.attemptTimes(r.uuid);
        assert.equal(r.attempts, times.length, 'the row counts every attempt');
        assert.ok(times.length >= 3, `retried within the budget (${times.length} attempts)`);
        // The worker stamps the first attempt just before calling send and the fake stamps it on receipt,
        // so with millisecond clocks the fake's stamp can be one tick later than the one the budget uses.
        assert.ok(
          r.failed_at - times[0]! >= 150 - 1,
          `given up ${r.failed_at - times[0]!} ms after the first attempt`,
        );
        // The budget is checked after each failure: the last attempt starts at most one backoff (20 ms) past it.
        assert.ok(
          times.at(-1)! - times[0]! < 150 + 20 + 30,
          `last attempt ${times.at(-1)! - times[0]!} ms after the first`,
        );
        assert.equal(r.reason, 'retries_exhausted');
      }
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'attempts', 'retry', '503'), 4);
      assert.equal(deliveryEvents(metrics, 'attempts', 'dead_letter', 'retries_exhausted'), 2);
      assert.equal(deliveryEvents(metrics, 'elapsed', 'dead_letter', 'retries_exhausted'), 2);
    });

    it("falcosidekick_outputs counts each destination but stdout (Falcosidekick's debug printing counts nothing)", async (t) => {
      const cfg = config([dest('fwd', { type: 'eyrie' }), dest('debug', { extra: 'durability: memory' })]);
      const te = start(t, cfg, { fwd: succeed, debug: succeed });
      await te.engine.route(makeEvents(2, 35));
      await waitUntil(
        () => te.fakes.fwd!.delivered.length === 2 && te.fakes.debug!.delivered.length === 2,
        5000,
        () => 'both delivered',
      );
      const metrics = await te.metrics.text();
      const outputs = (destination: string) =>
        metricValue(metrics, 'falcosecurity_falcosidekick_outputs_total', { destination, status: 'ok' });
      assert.equal(outputs('fwd'), 2);
      assert.equal(outputs('debug'), 0);
      assert.doesNotMatch(metrics, /falcosidekick_outputs_total\{destination="debug"/);
    });

    it('a fallback measures latency from the ingest, not from the hand-over (durable and memory origins)', async (t) => {
      const cfg = config([
        dest('slowd', { retry: 'max_attempts: 1', extra: 'fallback: spare' }),
        dest('slowm', { retry: 'max_attempts: 1', extra: 'durability: memory, fallback: spare' }),
        dest('spare', { extra: 'filter: { rules: ["no rule has this name"] }' }),
      ]);
      const failSlowly: Behaviour = async () => {
        await sleep(300);
        throw http(503)();
      };
      const te = start(t, cfg, { slowd: failSlowly, slowm: failSlowly, spare: succeed });
      await te.engine.route(makeEvents(1, 32));
      await waitUntil(
        () => te.fakes.spare!.delivered.length >= 2,
        5000,
        () => `${te.fakes.spare!.delivered.length}/2 handed over and delivered`,
      );
      const metrics = await te.metrics.text();
      assert.equal(metricValue(metrics, 'eyrie_delivery_latency_seconds_count', { destination: 'spare' }), 2);
      const sum = metricValue(metrics, 'eyrie_delivery_latency_seconds_sum', { destination: 'spare' });
      assert.ok(sum >= 0.6, `the 300 ms each spent failing on its first destination count (${sum} s)`);
    });

    it('fallback: given-up events go to the other destination instead of dead letters', async (t) => {
      const never = 'filter: { rules: ["no rule has this name"] }';
      const cfg = config([
        dest('perm', { extra: 'fallback: spare' }),
        dest('budget', { retry: 'max_attempts: 2', extra: 'fallback: spare' }),
        dest('spare', { extra: never }),
        dest('mem', { extra: 'durability: memory, fallback: disk' }),
        dest('disk', { extra: never }),
        dest('chain', { extra: 'fallback: broken' }),
        dest('broken', { extra: never }),
      ]);
      const te = start(t, cfg, {
        perm: failWith(http(400)),
        budget: failWith(http(503)),
        spare: succeed,
        mem: failWith(() => new PermanentError('no')),
        disk: succeed,
        chain: failWith(http(422)),
        broken: failWith(() => new PermanentError('broken too')),
      });
      const events = makeEvents(4, 14);
      const t0 = Date.now();
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.spare!.delivered.length >= 4,
        5000,
        () => 'spare takes what perm gives up',
      );
      assert.ok(
        Date.now() - t0 < 500,
        `the fallback is woken at once, not at its next idle poll (${Date.now() - t0} ms)`,
      );
      await waitUntil(
        () =>
          te.fakes.spare!.delivered.length >= 8 &&
          te.fakes.disk!.delivered.length >= 4 &&
          deadLetterRows(te.dataDir, 'broken').length === 4,
        5000,
        () => `spare ${te.fakes.spare!.delivered.length}/8, disk ${te.fakes.disk!.delivered.length}/4`,
      );
      await sleep(50);
      // spare gets each event twice: once given up by perm, once by budget (its own filter matches nothing).
      assert.deepEqual(sorted(te.fakes.spare!.delivered), sorted([...uuids(events), ...uuids(events)]));
      assertExactlyOnce(te.fakes.disk!, uuids(events));
      for (const name of ['perm', 'budget', 'chain', 'mem', 'spare', 'disk']) {
        assert.deepEqual(deadLetterRows(te.dataDir, name), [], `${name}: no dead letters`);
      }
      const broken = deadLetterRows(te.dataDir, 'broken');
      assert.deepEqual(
        sorted(broken.map((r) => r.uuid)),
        sorted(uuids(events)),
        'the fallback dead-letters what it cannot deliver',
      );
      assert.ok(broken.every((r) => r.reason === 'permanent_undeliverable'));
      for (const e of events)
        assert.equal(te.fakes.budget!.attemptsOf(e.uuid), 2, 'budget spent before the fallback');
      const metrics = await te.metrics.text();
      const outcome = (destination: string, o: string, reason?: string) =>
        deliveryEvents(metrics, destination, o, reason);
      assert.equal(outcome('perm', 'fallback', 'permanent_400'), 4);
      assert.equal(outcome('budget', 'fallback', 'retries_exhausted'), 4);
      assert.equal(outcome('mem', 'fallback', 'permanent_undeliverable'), 4);
      assert.equal(outcome('mem', 'dropped'), 0, 'a memory queue with a fallback drops nothing');
      assert.equal(outcome('chain', 'fallback', 'permanent_422'), 4);
      assert.equal(outcome('broken', 'dead_letter', 'permanent_undeliverable'), 4);
      assert.equal(outcome('spare', 'success'), 8);
      assert.equal(
        query<{ n: number }>(te.dataDir, 'SELECT count(*) AS n FROM deliveries')[0]!.n,
        0,
        'nothing left queued',
      );
    });
  });

  describe('queue caps', () => {
    const events = uniformEvents(12);
    const size = Buffer.byteLength(stringifyJson(events[0]!));
    const first5 = uuids(events.slice(0, 5));
    const last5 = uuids(events.slice(7));
    const cases: { name: string; queue: string; kept: string[]; reason: string }[] = [
      {
        name: 'max_events, drop_newest',
        queue: 'max_events: 5, when_full: drop_newest',
        kept: first5,
        reason: 'queue_full_newest',
      },
      {
        name: 'max_events, drop_oldest',
        queue: 'max_events: 5, when_full: drop_oldest',
        kept: last5,
        reason: 'queue_full_oldest',
      },
      {
        name: 'max_bytes, drop_newest',
        queue: `max_bytes: ${size * 5 + Math.floor(size / 2)}, when_full: drop_newest`,
        kept: first5,
        reason: 'queue_full_newest',
      },
      {
        name: 'max_bytes, drop_oldest',
        queue: `max_bytes: ${size * 5 + Math.floor(size / 2)}, when_full: drop_oldest`,
        kept: last5,
        reason: 'queue_full_oldest',
      },
    ];
    for (const c of cases) {
      it(`${c.name} keeps ${c.kept === first5 ? 'the oldest' : 'the newest'} 5 of 12 and counts 7 drops`, async (t) => {
        const cfg = config(
          [dest('capped', { extra: `queue: { concurrency: 1, ${c.queue} }` })],
          'shutdown_timeout: 20ms',
        );
        const te = start(t, cfg, { capped: hang });
        await te.engine.route(events);
        assert.deepEqual(queuedUuids(te.dataDir, 'capped'), c.kept);
        const metrics = await te.metrics.text();
        assert.equal(deliveryEvents(metrics, 'capped', 'dropped', c.reason), 7);
        assert.equal(deliveryEvents(metrics, 'capped', 'dropped'), 7, 'one reason only');
        assert.equal(metricValue(metrics, 'eyrie_queue_depth', { destination: 'capped' }), 5);
        assert.equal(metricValue(metrics, 'eyrie_queue_bytes', { destination: 'capped' }), size * 5);
        assert.equal(
          query<{ n: number }>(te.dataDir, 'SELECT count(*) AS n FROM events')[0]!.n,
          5,
          'dropped events are not stored',
        );
      });
    }

    it('drop_oldest never drops an entry being sent; the newest goes when only those are left', async (t) => {
      const cfg = config(
        [dest('capped', { extra: 'queue: { concurrency: 2, max_events: 2, when_full: drop_oldest }' })],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, { capped: hang });
      await te.engine.route(events.slice(0, 2));
      await waitUntil(
        () => te.fakes.capped!.inFlight === 2,
        2000,
        () => 'both entries in flight',
      );
      await te.engine.route(events.slice(2, 4));
      assert.deepEqual(
        queuedUuids(te.dataDir, 'capped'),
        uuids(events.slice(0, 2)),
        'in-flight entries kept',
      );
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'capped', 'dropped', 'queue_full_newest'), 2);
    });

    it('drop_oldest drops entries claimed ahead (not being sent) like any other', async (t) => {
      const cfg = config(
        [dest('capped', { extra: 'queue: { concurrency: 1, max_events: 5, when_full: drop_oldest }' })],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, { capped: hang });
      const all = uniformEvents(8);
      await te.engine.route(all.slice(0, 3));
      await waitUntil(
        () => te.fakes.capped!.inFlight === 1,
        2000,
        () => 'first entry in flight',
      );
      // The worker claimed the other two ahead; the next events are handed to it while it is caught up.
      const leased = query<{ n: number }>(
        te.dataDir,
        'SELECT count(*) AS n FROM deliveries WHERE leased != 0',
      );
      assert.equal(leased[0]!.n, 3, 'all three claimed');
      await te.engine.route(all.slice(3));
      assert.deepEqual(
        queuedUuids(te.dataDir, 'capped'),
        uuids([all[0]!, ...all.slice(4)]),
        'the oldest unsent entries went, the one being sent stayed',
      );
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'capped', 'dropped', 'queue_full_oldest'), 3);
      assert.equal(deliveryEvents(metrics, 'capped', 'dropped'), 3);
      assert.equal(metricValue(metrics, 'eyrie_queue_depth', { destination: 'capped' }), 5);
      assert.deepEqual(
        te.fakes.capped!.sends.map((x) => x.uuids),
        [[all[0]!.uuid]],
        'nothing else sent yet',
      );
    });

    /** A drop_oldest queue capped at `maxBytes`, holding `queued` with the first of them in flight. */
    async function cappedWithOneInFlight(
      t: TestContext,
      durability: 'disk' | 'memory',
      maxBytes: number,
      queued: FalcoEvent[],
    ): Promise<{ te: TestEngine; dropped: (reason: string) => Promise<number> }> {
      const cfg = config(
        [
          dest('capped', {
            extra: `durability: ${durability}, queue: { concurrency: 1, max_bytes: ${maxBytes}, when_full: drop_oldest }`,
          }),
        ],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, { capped: hang });
      await te.engine.route(queued);
      await waitUntil(
        () => te.fakes.capped!.inFlight === 1,
        2000,
        () => 'first entry in flight',
      );
      const dropped = async (reason: string) =>
        deliveryEvents(await te.metrics.text(), 'capped', 'dropped', reason);
      return { te, dropped };
    }

    for (const durability of ['disk', 'memory'] as const) {
      it(`${durability}: an event larger than max_bytes is dropped alone, the queued ones stay (drop_oldest)`, async (t) => {
        const small = uniformEvents(5);
        const { te, dropped } = await cappedWithOneInFlight(t, durability, size * 6, small);
        const huge = { ...uniformEvents(1)[0]!, output: 'x'.repeat(size * 7) };
        await te.engine.route([huge]);
        assert.equal(te.engine.health()[0]!.queued, 5, 'the five small events are still queued');
        if (durability === 'disk') assert.deepEqual(queuedUuids(te.dataDir, 'capped'), uuids(small));
        assert.equal(await dropped('queue_full_newest'), 1, 'the oversized event is counted');
        assert.equal(await dropped('queue_full_oldest'), 0, 'nothing else dropped');
      });

      it(`${durability}: when the entries in flight leave no room, only the new event goes (drop_oldest)`, async (t) => {
        // In flight: 1 entry of `size`; queued: 1 more. A new event of 2 × size cannot fit beside the
        // one in flight under a cap of 2.5 × size, so dropping the queued one would not help.
        const two = uniformEvents(2);
        const { te, dropped } = await cappedWithOneInFlight(t, durability, Math.floor(size * 2.5), two);
        const base = uniformEvents(1)[0]!;
        const double = { ...base, output: base.output + 'x'.repeat(size) };
        await te.engine.route([double]);
        assert.equal(te.engine.health()[0]!.queued, 2, 'both earlier events kept');
        if (durability === 'disk') assert.deepEqual(queuedUuids(te.dataDir, 'capped'), uuids(two));
        assert.equal(await dropped('queue_full_newest'), 1);
        assert.equal(await dropped('queue_full_oldest'), 0);
      });
    }

    for (const c of cases) {
      for (const durability of ['disk', 'memory'] as const) {
        it(`${c.name}, durability: ${durability}, with a fallback: the 7 turned away go to the fallback, none dropped`, async (t) => {
          const cfg = config(
            [
              dest('capped', {
                extra: `durability: ${durability}, fallback: spare, queue: { concurrency: 1, ${c.queue} }`,
              }),
              // Routed nothing itself: what it holds came from the cap.
              dest('spare', { extra: 'filter: { rules: ["no rule has this name"] }' }),
            ],
            'shutdown_timeout: 20ms',
          );
          const te = start(t, cfg, { capped: hang, spare: hang });
          await te.engine.route(events);
          const queued = (name: string) => te.engine.health().find((h) => h.name === name)!.queued;
          await waitUntil(
            () => queued('spare') === 7,
            2000,
            () => `spare holds ${queued('spare')}`,
          );
          assert.equal(queued('capped'), 5, 'the capped queue holds its cap');
          const handed = queuedUuids(te.dataDir, 'spare');
          if (durability === 'disk') {
            assert.deepEqual(queuedUuids(te.dataDir, 'capped'), c.kept);
            const turnedAway = uuids(events).filter((u) => !c.kept.includes(u));
            assert.deepEqual(handed, turnedAway, 'the fallback takes exactly what the cap turned away');
          } else {
            assert.equal(new Set(handed).size, 7, 'seven distinct events');
            assert.ok(handed.every((u) => uuids(events).includes(u)));
          }
          const metrics = await te.metrics.text();
          assert.equal(deliveryEvents(metrics, 'capped', 'fallback', c.reason), 7);
          assert.equal(deliveryEvents(metrics, 'capped', 'dropped'), 0, 'nothing dropped');
          assert.equal(deliveryEvents(metrics, 'spare', 'dropped'), 0);
        });
      }
    }

    it('an event routed to a full queue and to its full fallback is counted dropped once, by the fallback', async (t) => {
      const cap = 'queue: { concurrency: 1, max_events: 2, when_full: drop_newest }';
      const cfg = config(
        [dest('capped', { extra: `fallback: spare, ${cap}` }), dest('spare', { extra: cap })],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, { capped: hang, spare: hang });
      await te.engine.route(events.slice(0, 2));
      await te.engine.route(events.slice(2, 3));
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'spare', 'dropped', 'queue_full_newest'), 1);
      assert.equal(deliveryEvents(metrics, 'capped', 'fallback', 'queue_full_newest'), 1);
      assert.equal(deliveryEvents(metrics, 'capped', 'dropped'), 0);
    });

    it('a memory fallback takes what a durable cap turns away, and its own cap applies', async (t) => {
      const cfg = config(
        [
          dest('capped', { extra: 'fallback: spare, queue: { concurrency: 1, max_events: 5 }' }),
          dest('spare', {
            extra:
              'durability: memory, filter: { rules: ["no rule has this name"] }, queue: { concurrency: 1, max_events: 4, when_full: drop_newest }',
          }),
        ],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, { capped: hang, spare: hang });
      await te.engine.route(events);
      const queued = (name: string) => te.engine.health().find((h) => h.name === name)!.queued;
      await waitUntil(
        () => queued('spare') === 4,
        2000,
        () => `spare holds ${queued('spare')}`,
      );
      assert.deepEqual(queuedUuids(te.dataDir, 'capped'), last5);
      await waitUntil(
        () => te.fakes.spare!.sends.length === 1,
        2000,
        () => 'the fallback sends',
      );
      assert.deepEqual(te.fakes.spare!.sends[0]!.uuids, [events[0]!.uuid], 'the oldest turned away first');
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'capped', 'fallback', 'queue_full_oldest'), 7);
      assert.equal(deliveryEvents(metrics, 'spare', 'dropped', 'queue_full_newest'), 3, "the fallback's cap");
      assert.equal(
        query<{ n: number }>(te.dataDir, 'SELECT count(*) AS n FROM events')[0]!.n,
        5,
        'no event row is left behind for what went to memory',
      );
    });

    it('a fallback applies its own cap to what it is handed (durable and memory origins)', async (t) => {
      const never = 'filter: { rules: ["no rule has this name"] }';
      const cfg = config(
        [
          dest('perm', { extra: 'fallback: spare' }),
          dest('mem', { extra: 'durability: memory, fallback: spare' }),
          dest('spare', {
            extra: `${never}, queue: { concurrency: 1, max_events: 5, when_full: drop_newest }`,
          }),
        ],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, {
        perm: failWith(() => new PermanentError('no')),
        mem: failWith(() => new PermanentError('no')),
        spare: hang,
      });
      await te.engine.route(uniformEvents(8));
      const queued = (name: string) => te.engine.health().find((h) => h.name === name)!.queued;
      await waitUntil(
        () => queued('perm') === 0 && queued('mem') === 0,
        5000,
        () => `perm ${queued('perm')}, mem ${queued('mem')} still queued`,
      );
      assert.equal(queued('spare'), 5, 'spare holds its cap');
      assert.equal(queuedUuids(te.dataDir, 'spare').length, 5);
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'spare', 'dropped', 'queue_full_newest'), 11);
      assert.equal(
        query<{ n: number }>(te.dataDir, 'SELECT count(*) AS n FROM events')[0]!.n,
        5,
        'no event row is left behind for a dropped hand-over',
      );
    });

    for (const whenFull of ['drop_newest', 'drop_oldest'] as const) {
      it(`durability: memory honours max_events with ${whenFull}`, async (t) => {
        const cfg = config(
          [
            dest('mem', {
              extra: `durability: memory, queue: { concurrency: 1, max_events: 5, when_full: ${whenFull} }`,
            }),
          ],
          'shutdown_timeout: 20ms',
        );
        const te = start(t, cfg, { mem: hang });
        await te.engine.route(events);
        await waitUntil(
          () => te.fakes.mem!.sends.length === 1,
          2000,
          () => 'first send',
        );
        const expected = whenFull === 'drop_newest' ? first5 : last5;
        assert.deepEqual(te.fakes.mem!.sends[0]!.uuids, [expected[0]], 'the oldest kept entry is sent first');
        assert.equal(te.engine.health().find((h) => h.name === 'mem')!.queued, 5);
        const reason = whenFull === 'drop_newest' ? 'queue_full_newest' : 'queue_full_oldest';
        const metrics = await te.metrics.text();
        assert.equal(deliveryEvents(metrics, 'mem', 'dropped', reason), 7);
      });
    }
  });

  describe('routing', () => {
    it('filters: an event a destination does not accept is not queued for it, but is for another', async (t) => {
      const cfg = config(
        [
          dest('severe', { extra: 'filter: { minimum_priority: error }, queue: { concurrency: 1 }' }),
          dest('syscalls', { extra: 'filter: { sources: [syscall] }, queue: { concurrency: 1 }' }),
          dest('everything', { extra: 'queue: { concurrency: 1 }' }),
        ],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, { severe: hang, syscalls: hang, everything: hang });
      const events = makeEvents(300, 15);
      const test = testEvent();
      await te.engine.route([...events, test]);
      const severe = events.filter((e) => PRIORITIES.indexOf(e.priority) <= PRIORITIES.indexOf('Error'));
      const syscalls = events.filter((e) => e.source === 'syscall');
      assert.ok(severe.length > 0 && severe.length < 300, `a mix of priorities (${severe.length} severe)`);
      assert.ok(
        syscalls.length > 0 && syscalls.length < 300,
        `a mix of sources (${syscalls.length} syscall)`,
      );
      // The test event bypasses minimum_priority (as in Falcosidekick), but it is source "internal".
      assert.deepEqual(queuedUuids(te.dataDir, 'severe'), [...uuids(severe), test.uuid]);
      assert.deepEqual(queuedUuids(te.dataDir, 'syscalls'), uuids(syscalls));
      assert.deepEqual(queuedUuids(te.dataDir, 'everything'), [...uuids(events), test.uuid]);
      const metrics = await te.metrics.text();
      const decision = (destination: string, d: string) =>
        metricValue(metrics, 'eyrie_routing_events_total', { destination, decision: d });
      assert.equal(decision('severe', 'routed'), severe.length + 1);
      assert.equal(decision('severe', 'filtered'), 300 - severe.length);
      assert.equal(decision('syscalls', 'routed'), syscalls.length);
      assert.equal(decision('syscalls', 'filtered'), 301 - syscalls.length);
      assert.equal(decision('everything', 'routed'), 301);
      assert.equal(decision('everything', 'filtered'), 0);
      // One stored body per event, shared by its deliveries.
      assert.equal(query<{ n: number }>(te.dataDir, 'SELECT count(*) AS n FROM events')[0]!.n, 301);
    });

    it('a CEL error refuses the event, counts as cel_error and warns at most once a minute', async (t) => {
      const cel = 'event.output_fields["k8s.ns.name"] != "kube-system"';
      const cfg = config([
        dest('ns', { extra: `durability: memory, filter: { cel: '${cel}' }` }),
        dest('all', { extra: 'durability: memory' }),
      ]);
      const fakes = { ns: new FakeDestination('ns'), all: new FakeDestination('all') };
      const { logger, warnings } = warningsLogger();
      const metrics = new Metrics({ defaultMetrics: false });
      const engine = new DeliveryEngine({
        dataDir: cfg.storage.path,
        delivery: cfg.delivery,
        destinations: cfg.destinations.map((c) => ({ config: c, destination: fakes[c.name as 'ns'] })),
        metrics,
        logger,
      });
      t.after(() => engine.close());
      const base = makeEvents(1, 17)[0]!;
      const withFields = (output_fields: Record<string, string>) => ({
        ...base,
        uuid: randomUUID(),
        output_fields,
      });
      const missing = [1, 2, 3].map(() => withFields({ 'fd.name': '/etc/shadow' }));
      const app = withFields({ 'k8s.ns.name': 'shop' });
      const system = withFields({ 'k8s.ns.name': 'kube-system' });
      // The throttle runs on the monotonic clock. A whole number, so that the steps below add up
      // exactly (performance.now() has a fraction: x + 59,999 + 1 - x can fall short of 60,000).
      let now = Math.ceil(performance.now());
      t.mock.method(performance, 'now', () => now);
      await engine.route([missing[0]!, app, system, missing[1]!, missing[2]!]);
      assert.equal(warnings.length, 1, 'one warning for three errors');
      const { level, destination, expression, rule, suppressed } = warnings[0]!;
      assert.deepEqual(
        { level, destination, expression, rule, suppressed },
        { level: 40, destination: 'ns', expression: cel, rule: base.rule, suppressed: 0 },
      );
      assert.match(String(warnings[0]!.error), /^destinations\.ns\.filter\.cel: No such key: k8s\.ns\.name/);
      assert.match(String(warnings[0]!.msg), /CEL filter error: the event is not delivered/);
      now += 59_999;
      const late = withFields({});
      await engine.route([late]);
      assert.equal(warnings.length, 1, 'still within the minute');
      now += 1;
      const later = withFields({});
      await engine.route([later]);
      assert.equal(warnings.length, 2, 'a minute later');
      assert.equal(warnings[1]!.suppressed, 3);
      t.mock.restoreAll();
      const everything = [...missing, app, system, late, later];
      await waitUntil(
        () => fakes.all.delivered.length >= everything.length && fakes.ns.delivered.length >= 1,
        5000,
        () => `all got ${fakes.all.delivered.length}, ns ${fakes.ns.delivered.length}`,
      );
      await sleep(50);
      assertExactlyOnce(fakes.ns, [app.uuid]);
      assertExactlyOnce(fakes.all, uuids(everything));
      const text = await metrics.text();
      const decision = (destination: string, d: string) =>
        metricValue(text, 'eyrie_routing_events_total', { destination, decision: d });
      assert.equal(decision('ns', 'cel_error'), 5);
      assert.equal(decision('ns', 'filtered'), 1);
      assert.equal(decision('ns', 'routed'), 1);
      assert.equal(decision('all', 'routed'), 7);
      // No cel_error series for a destination without a CEL expression.
      assert.doesNotMatch(text, /destination="all",decision="cel_error"/);
    });

    it('dedup drops identical events within the window; a test event only when sent again', async (t) => {
      const cfg = config([
        dest('dedup', { extra: 'dedup: { window: 1m }' }),
        dest('short', { extra: 'dedup: { window: 150ms }' }),
        dest('plain'),
      ]);
      const te = start(t, cfg, { dedup: succeed, short: succeed, plain: succeed });
      const [a, b] = makeEvents(2, 16);
      const copy = () => ({ ...a!, uuid: randomUUID() });
      const a2 = copy();
      const t1 = testEvent();
      const t2 = testEvent();
      // The same test event again (a retried forward, a forwarding loop): not a new POST /test.
      await te.engine.route([a!, a2, b!, t1, t2, { ...t1 }]);
      await sleep(200);
      const a3 = copy();
      await te.engine.route([a3]);
      await waitUntil(
        () => te.fakes.plain!.delivered.length >= 7,
        5000,
        () => 'plain gets everything',
      );
      await waitUntil(
        () => te.fakes.short!.delivered.length >= 5,
        5000,
        () => 'short gets a3',
      );
      await sleep(50);
      assert.deepEqual(
        sorted(te.fakes.plain!.delivered),
        sorted([a!.uuid, a2.uuid, b!.uuid, t1.uuid, t1.uuid, t2.uuid, a3.uuid]),
      );
      assertExactlyOnce(te.fakes.dedup!, [a!.uuid, b!.uuid, t1.uuid, t2.uuid]);
      assertExactlyOnce(te.fakes.short!, [a!.uuid, b!.uuid, t1.uuid, t2.uuid, a3.uuid]);
      const metrics = await te.metrics.text();
      const decision = (destination: string, d: string) =>
        metricValue(metrics, 'eyrie_routing_events_total', { destination, decision: d });
      assert.equal(decision('dedup', 'deduplicated'), 3);
      assert.equal(decision('dedup', 'routed'), 4);
      assert.equal(decision('short', 'deduplicated'), 2);
      assert.equal(decision('plain', 'deduplicated'), 0);
    });
  });

  describe('batching', () => {
    const cfg = () =>
      config([dest('batched', { type: 'eyrie', extra: 'batch: { max_events: 10, timeout: 200ms }' })]);

    it('sends batches of up to max_events; a full batch goes at once', async (t) => {
      const te = start(t, cfg(), { batched: succeed });
      const fake = te.fakes.batched!;
      const events = makeEvents(25, 17);
      const t0 = Date.now();
      await te.engine.route(events);
      await waitUntil(
        () => fake.delivered.length >= 25,
        5000,
        () => `${fake.delivered.length}/25`,
      );
      await sleep(30);
      assertExactlyOnce(fake, uuids(events));
      const sizes = fake.sends.map((s) => s.uuids.length).sort((x, y) => x - y);
      assert.deepEqual(sizes, [5, 10, 10]);
      for (const s of fake.sends) {
        if (s.uuids.length === 10)
          assert.ok(s.at - t0 < 150, `a full batch is not held for the timeout (${s.at - t0} ms)`);
        else assert.ok(s.at - t0 >= 200, `the partial batch waited for the timeout (${s.at - t0} ms)`);
      }
    });

    it('eyrie_delivery_in_flight counts sends (requests), not the events in them', async (t) => {
      const te = start(t, cfg(), { batched: hang });
      const fake = te.fakes.batched!;
      await te.engine.route(makeEvents(10, 31));
      await waitUntil(
        () => fake.inFlight === 1,
        5000,
        () => 'one batch being sent',
      );
      const metrics = await te.metrics.text();
      assert.equal(metricValue(metrics, 'eyrie_delivery_in_flight', { destination: 'batched' }), 1);
    });

    it('sends a lone event after batch.timeout, not before', async (t) => {
      const te = start(t, cfg(), { batched: succeed });
      const fake = te.fakes.batched!;
      const [event] = makeEvents(1, 18);
      const t0 = Date.now();
      await te.engine.route([event!]);
      await waitUntil(
        () => fake.delivered.length === 1,
        3000,
        () => 'the lone event',
      );
      const waited = fake.sends[0]!.at - t0;
      assert.ok(waited >= 200, `sent after ${waited} ms`);
      assert.ok(waited < 700, `sent after ${waited} ms`);
      assert.deepEqual(fake.sends[0]!.uuids, [event!.uuid]);
    });

    it('never takes a batch past max_bytes when topping it up, and sends it once the next entry does not fit', async (t) => {
      const size = Buffer.byteLength(stringifyJson(uniformEvents(1)[0]!));
      const maxBytes = Math.floor(size * 2.5);
      const te = start(
        t,
        config([
          dest('batched', {
            type: 'eyrie',
            extra: `queue: { concurrency: 1 }, batch: { max_events: 10, max_bytes: ${maxBytes}, timeout: 400ms }`,
          }),
        ]),
        { batched: succeed },
      );
      const fake = te.fakes.batched!;
      const events = uniformEvents(5);
      await te.engine.route(events.slice(0, 1));
      await sleep(50); // the worker holds the first event, waiting for the batch to fill
      const t0 = Date.now();
      await te.engine.route(events.slice(1));
      await waitUntil(
        () => fake.delivered.length === 5,
        3000,
        () => `${fake.delivered.length}/5`,
      );
      assertExactlyOnce(fake, uuids(events));
      assert.deepEqual(
        fake.sends.map((x) => x.uuids),
        [uuids(events.slice(0, 2)), uuids(events.slice(2, 4)), uuids(events.slice(4))],
        `batches of at most ${maxBytes} bytes (2 events), in order`,
      );
      for (const send of fake.sends.slice(0, 2))
        assert.ok(
          send.at - t0 < 300,
          `a batch the next entry cannot fit in goes at once (${send.at - t0} ms)`,
        );
    });

    it('a batch that waited its whole timeout is still leased while it is sent (no second send)', async (t) => {
      // lease 5.2 s is valid for request.timeout 100 ms, but a batch that waits 5 s and then takes
      // 600 ms to send outlives it, unless the lease covers the wait.
      const te = start(
        t,
        config([
          dest('slow', {
            type: 'eyrie',
            extra:
              'request: { timeout: 100ms }, queue: { concurrency: 2, lease: 5200ms }, batch: { max_events: 10, timeout: 5s }',
          }),
        ]),
        { slow: () => sleep(600) },
      );
      const [event] = makeEvents(1, 19);
      await te.engine.route([event!]);
      await waitUntil(
        () => te.fakes.slow!.delivered.length === 1,
        8000,
        () => 'sent after the batch timeout',
      );
      await sleep(1000);
      assert.equal(te.fakes.slow!.attemptsOf(event!.uuid), 1, 'sent once');
    });
  });

  describe('durability: memory', () => {
    it('measures queued bytes as the journal does, so both durabilities reach a byte cap alike', async (t) => {
      // Falcosidekick's JSON escapes < > & as \u003c (6 bytes): Falco outputs are full of `<NA>`.
      const cfg = config([
        dest('disk', { retry: 'max_attempts: 0' }),
        dest('mem', { retry: 'max_attempts: 0', extra: 'durability: memory' }),
      ]);
      const te = start(t, cfg, { disk: failWith(http(503, 3_600_000)), mem: failWith(http(503, 3_600_000)) });
      const events = makeEvents(3, 20).map((e) => ({
        ...e,
        output: `${e.output} <NA> && cat </etc/shadow >/tmp/x`,
        output_fields: { ...e.output_fields, 'proc.pname': '<NA>' },
      }));
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.disk!.sends.length === 3 && te.fakes.mem!.sends.length === 3,
        5000,
        () => 'each event tried once',
      );
      const metrics = await te.metrics.text();
      const bytes = (destination: string) => metricValue(metrics, 'eyrie_queue_bytes', { destination });
      assert.ok(bytes('disk') > 0);
      assert.equal(bytes('mem'), bytes('disk'));
    });

    it('writes nothing to the journal, still retries in memory, counts given-up events as dropped', async (t) => {
      const cfg = config([
        dest('mem', { extra: 'durability: memory' }),
        dest('lossy', { retry: 'max_attempts: 2', extra: 'durability: memory' }),
      ]);
      const { logger, warnings } = warningsLogger('error');
      const te = start(
        t,
        cfg,
        { mem: failTimes(2, http(503)), lossy: failWith(http(502)) },
        cfg.storage.path,
        logger,
      );
      const events = makeEvents(5, 19);
      await te.engine.route(events);
      // No durable destination: not even a database.
      const rows = () => (existsSync(te.dataDir) ? readdirSync(te.dataDir).length : 0);
      assert.equal(rows(), 0, 'nothing journaled');
      assert.equal(
        te.engine.health().find((h) => h.name === 'mem')!.queued! + te.fakes.mem!.delivered.length,
        5,
        'queued in memory',
      );
      await waitUntil(
        () => te.fakes.mem!.delivered.length >= 5 && te.fakes.lossy!.sends.length >= 10,
        5000,
        () => `mem ${te.fakes.mem!.delivered.length}/5, lossy ${te.fakes.lossy!.sends.length}/10 sends`,
      );
      await sleep(50);
      assertExactlyOnce(te.fakes.mem!, uuids(events));
      for (const e of events) {
        assert.equal(te.fakes.mem!.attemptsOf(e.uuid), 3, 'retried in memory');
        assert.equal(te.fakes.lossy!.attemptsOf(e.uuid), 2, 'lossy: max_attempts');
      }
      assert.equal(rows(), 0, 'still nothing journaled, no dead letters');
      assert.deepEqual(te.engine.journalHealth(), { ok: true });
      const metrics = await te.metrics.text();
      const outcome = (destination: string, o: string, reason?: string) =>
        deliveryEvents(metrics, destination, o, reason);
      assert.equal(outcome('mem', 'retry', '503'), 10);
      assert.equal(outcome('mem', 'success'), 5);
      assert.equal(outcome('lossy', 'dropped', 'gave_up_memory'), 5);
      const givenUp = warnings.filter((w) => String(w.msg).startsWith('delivery given up'));
      assert.ok(givenUp.length > 0);
      for (const w of givenUp)
        assert.equal(w.msg, 'delivery given up, dropped (durability: memory, and no fallback)');
      assert.equal(outcome('lossy', 'dead_letter'), 0);
      assert.equal(metricValue(metrics, 'eyrie_queue_depth', { destination: 'lossy' }), 0);
      assert.equal(metricValue(metrics, 'eyrie_dead_letters', { destination: 'lossy' }), 0);
    });
  });

  describe('no durable destination', () => {
    it('creates no database (nor its directory) without destinations, and routes events fine', async (t) => {
      const cfg = config([], 'shutdown_timeout: 50ms, disk_cap: 1');
      const te = start(t, cfg, {});
      const events = makeEvents(20, 27);
      await te.engine.route(events);
      await te.engine.route([testEvent()]);
      assert.deepEqual(te.engine.journalHealth(), { ok: true });
      assert.deepEqual(te.engine.health(), []);
      assert.equal(existsSync(te.dataDir), false, `${te.dataDir} was not created`);
      const metrics = await te.metrics.text();
      assert.equal(metricValue(metrics, 'eyrie_journal_commit_seconds_count'), 0);
      await te.close();
      assert.equal(existsSync(te.dataDir), false, 'nor by close()');
    });

    it('runs memory destinations where no data directory can be created', async (t) => {
      const cfg = config([dest('mem', { extra: 'durability: memory' })], 'shutdown_timeout: 50ms');
      // Below a regular file: mkdir fails even for root (a read-only working directory would not stop root).
      const file = join(cfg.storage.path, '..', 'eyrie.yaml');
      assert.ok(existsSync(file));
      const te = start(t, cfg, { mem: succeed }, join(file, 'data'));
      const events = makeEvents(10, 28);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.mem!.delivered.length >= 10,
        3000,
        () => `${te.fakes.mem!.delivered.length}/10`,
      );
      assertExactlyOnce(te.fakes.mem!, uuids(events));
      assert.deepEqual(te.engine.journalHealth(), { ok: true });
      await te.close();
    });
  });

  describe('claiming ahead and grouped acks', () => {
    it('one worker delivers in queue order, whether entries were claimed ahead or handed over', async (t) => {
      const cfg = config([dest('ordered', { extra: 'queue: { concurrency: 1 }' })]);
      const te = start(t, cfg, { ordered: () => sleep(1) });
      const events = makeEvents(60, 29);
      // A backlog first (claimed four at a time), then events arriving one by one while it is idle.
      await te.engine.route(events.slice(0, 30));
      for (const e of events.slice(30)) {
        await te.engine.route([e]);
        await sleep(2);
      }
      await waitUntil(
        () => te.fakes.ordered!.delivered.length >= 60,
        5000,
        () => `${te.fakes.ordered!.delivered.length}/60`,
      );
      assert.deepEqual(te.fakes.ordered!.delivered, uuids(events));
      await sleep(30);
      assert.deepEqual(queuedUuids(te.dataDir, 'ordered'), [], 'every ack written');
      assert.equal(
        query<{ n: number }>(te.dataDir, 'SELECT count(*) AS n FROM events')[0]!.n,
        0,
        'no orphan events',
      );
    });

    it('never starts a send on a lease that could run out before the send ends', async (t) => {
      // A send may take request.timeout + 5 s = 5.1 s; the lease is 5.2 s, so an entry claimed ahead is
      // stale 100 ms later: it must be claimed afresh rather than sent on its old lease.
      const cfg = config([
        dest('slow', { extra: 'request: { timeout: 100ms }, queue: { concurrency: 1, lease: 5200ms }' }),
      ]);
      const leaseLeft: number[] = [];
      const te = start(t, cfg, {
        slow: async (events) => {
          const [row] = query<{ due_at: number; leased: number }>(
            cfg.storage.path,
            'SELECT d.due_at, d.leased FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.uuid = ?',
            events[0]!.uuid,
          );
          assert.ok(row !== undefined && row.leased !== 0, 'sent while leased');
          leaseLeft.push(row.due_at - Date.now());
          await sleep(150);
        },
      });
      const events = makeEvents(4, 30);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.slow!.delivered.length >= 4,
        5000,
        () => `${te.fakes.slow!.delivered.length}/4`,
      );
      assertExactlyOnce(te.fakes.slow!, uuids(events));
      assert.deepEqual(te.fakes.slow!.delivered, uuids(events), 'in order');
      assert.equal(leaseLeft.length, 4);
      for (const left of leaseLeft) assert.ok(left > 5100, `a send started with ${left} ms of lease left`);
    });

    it('acks that cannot be written: the entries come back when their lease expires (duplicates, no loss)', async (t) => {
      const cfg = config([
        dest('dup', { extra: 'request: { timeout: 100ms }, queue: { concurrency: 1, lease: 5200ms }' }),
      ]);
      const te = start(t, cfg, { dup: succeed });
      const [first, second] = makeEvents(2, 31);
      const db = openSqlite(join(te.dataDir, 'eyrie.db'));
      t.after(() => db.close());
      db.exec(
        `CREATE TRIGGER refuse BEFORE DELETE ON deliveries BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END`,
      );
      await te.engine.route([first!]);
      await waitUntil(
        () => te.fakes.dup!.delivered.length === 1,
        2000,
        () => 'first delivered',
      );
      await sleep(50);
      // Ingest is not held up by the failing acks it carries along.
      await te.engine.route([second!]);
      await waitUntil(
        () => te.fakes.dup!.delivered.length === 2,
        2000,
        () => 'second delivered',
      );
      await sleep(50);
      db.exec('DROP TRIGGER refuse');
      assert.deepEqual(
        queuedUuids(te.dataDir, 'dup'),
        uuids([first!, second!]),
        'still queued: an entry is deleted only by a written ack',
      );
      // Ingest worked throughout, but the lost acks are shown until results are written again.
      assert.match(
        String(te.engine.journalHealth().detail),
        /cannot record delivery results \(simulated write failure\)/,
      );
      await waitUntil(
        () => te.fakes.dup!.delivered.length === 4,
        8000,
        () => `${te.fakes.dup!.delivered.length}/4 deliveries`,
      );
      await sleep(50);
      assert.deepEqual(te.fakes.dup!.delivered, uuids([first!, second!, first!, second!]));
      assert.deepEqual(queuedUuids(te.dataDir, 'dup'), [], 'acknowledged the second time');
      assert.deepEqual(te.engine.journalHealth(), { ok: true });
      const metrics = await te.metrics.text();
      assert.equal(metricValue(metrics, 'eyrie_queue_depth', { destination: 'dup' }), 0);
      // /healthz forgets once results are written again: the counter keeps it for an alert.
      assert.ok(
        metricValue(metrics, 'eyrie_journal_unrecorded_results_total') >= 2,
        'both lost acks counted',
      );
    });

    it('a give-up that cannot be written: no crash, the entries come back when their lease expires', async (t) => {
      const never = 'filter: { rules: ["no rule has this name"] }';
      const shortLease = 'request: { timeout: 100ms }, queue: { concurrency: 1, lease: 5200ms }';
      const cfg = config([
        dest('p', { extra: shortLease }),
        dest('mem', { extra: `durability: memory, fallback: spare, ${shortLease}` }),
        dest('spare', { extra: never }),
      ]);
      let permanent = false;
      const failing = failWith(() => (permanent ? new PermanentError('no') : new RetryableError('later')));
      const te = start(t, cfg, { p: failing, mem: failing, spare: succeed });
      const unhandled: unknown[] = [];
      const onUnhandled = (err: unknown) => unhandled.push(err);
      process.on('unhandledRejection', onUnhandled);
      t.after(() => process.off('unhandledRejection', onUnhandled));
      const events = makeEvents(3, 41);
      await te.engine.route(events);
      const db = openSqlite(join(te.dataDir, 'eyrie.db'));
      t.after(() => db.close());
      // Dead letters (p) and the fallback's copy of an event (mem → spare) cannot be written.
      db.exec(`CREATE TRIGGER refuse_dead BEFORE INSERT ON dead_letters BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;
               CREATE TRIGGER refuse_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;`);
      permanent = true;
      await sleep(500);
      assert.deepEqual(unhandled, [], 'no unhandled rejection');
      assert.deepEqual(deadLetterRows(te.dataDir, 'p'), []);
      assert.deepEqual(queuedUuids(te.dataDir, 'p'), uuids(events), 'p: still queued (leased)');
      assert.equal(te.engine.health().find((h) => h.name === 'mem')!.queued, 3, 'mem: still queued');
      db.exec('DROP TRIGGER refuse_dead; DROP TRIGGER refuse_events;');
      await waitUntil(
        () => deadLetterRows(te.dataDir, 'p').length === 3 && te.fakes.spare!.delivered.length === 3,
        9000,
        () =>
          `p: ${deadLetterRows(te.dataDir, 'p').length}/3 dead letters, spare: ${te.fakes.spare!.delivered.length}/3`,
      );
      assert.deepEqual(sorted(deadLetterRows(te.dataDir, 'p').map((r) => r.uuid)), sorted(uuids(events)));
      assert.deepEqual(sorted(te.fakes.spare!.delivered), sorted(uuids(events)));
      assert.equal(te.engine.health().find((h) => h.name === 'mem')!.queued, 0);
      assert.deepEqual(unhandled, []);
    });
  });

  describe('isolation and shutdown', () => {
    it('one dead (hanging) destination does not stop another from delivering', async (t) => {
      const cfg = config([dest('dead'), dest('healthy')], 'shutdown_timeout: 50ms');
      const te = start(t, cfg, { dead: hang, healthy: succeed });
      const events = makeEvents(50, 20);
      for (let i = 0; i < 50; i += 10) await te.engine.route(events.slice(i, i + 10));
      await waitUntil(
        () => te.fakes.healthy!.delivered.length >= 50,
        3000,
        () => `${te.fakes.healthy!.delivered.length}/50`,
      );
      assertExactlyOnce(te.fakes.healthy!, uuids(events));
      assert.equal(te.fakes.dead!.inFlight, 4, 'the dead destination holds its four workers, no more');
      assert.equal(te.fakes.dead!.delivered.length, 0);
      assert.equal(queuedUuids(te.dataDir, 'dead').length, 50);
    });

    it('abandons a send that outlives request.timeout + 5 s and retries it', async (t) => {
      const cfg = config([
        dest('stuck', { extra: 'request: { timeout: 100ms }, queue: { concurrency: 1 }' }),
      ]);
      let calls = 0;
      const te = start(t, cfg, { stuck: (_events, fake) => (++calls === 1 ? fake.hang() : undefined) });
      const [event] = makeEvents(1, 23);
      await te.engine.route([event!]);
      await waitUntil(
        () => te.fakes.stuck!.delivered.length === 1,
        15_000,
        () => `${te.fakes.stuck!.sends.length} sends`,
      );
      const [first, second] = te.fakes.stuck!.attemptTimes(event!.uuid);
      // Millisecond clocks on both sides: allow one tick.
      assert.ok(second! - first! >= 5100 - 1, `retried ${second! - first!} ms after the first attempt`);
      assert.ok(second! - first! < 5100 + 2000, `retried ${second! - first!} ms after the first attempt`);
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'stuck', 'retry', 'timeout'), 1);
      assert.equal(metricValue(metrics, 'eyrie_delivery_in_flight', { destination: 'stuck' }), 0);
    });

    it('close() waits for a send in flight up to delivery.shutdown_timeout', async (t) => {
      // A deadline far above the send's 300 ms, so a close that waited for it stands out on any machine.
      const cfg = config([dest('slow', { extra: 'queue: { concurrency: 1 }' })], 'shutdown_timeout: 15s');
      const te = start(t, cfg, { slow: () => sleep(300) });
      const [event] = makeEvents(1, 21);
      await te.engine.route([event!]);
      await waitUntil(
        () => te.fakes.slow!.inFlight === 1,
        2000,
        () => 'send started',
      );
      const t0 = Date.now();
      await te.close();
      const took = Date.now() - t0;
      assert.ok(took >= 200 && took < 7500, `close() took ${took} ms`);
      assert.deepEqual(te.fakes.slow!.delivered, [event!.uuid], 'the send finished');
      assert.deepEqual(
        queuedUuids(cfg.storage.path, 'slow'),
        [],
        'and was acknowledged before the journal closed',
      );

      const again = start(t, cfg, { slow: succeed });
      await sleep(300);
      assert.deepEqual(again.fakes.slow!.sends, [], 'not delivered again after a restart');
    });

    it('close() sends what a memory queue holds until it is empty (it would be gone with the process)', async (t) => {
      const cfg = config(
        [dest('mem', { extra: 'durability: memory, queue: { concurrency: 1 }' })],
        'shutdown_timeout: 15s',
      );
      const { logger, warnings } = warningsLogger();
      const te = start(t, cfg, { mem: () => sleep(20) }, cfg.storage.path, logger);
      const events = makeEvents(20, 22);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.mem!.inFlight === 1,
        2000,
        () => 'first send started',
      );
      const t0 = Date.now();
      await te.close();
      const took = Date.now() - t0;
      assertExactlyOnce(te.fakes.mem!, uuids(events));
      assert.ok(took < 7500, `close() took ${took} ms for 20 sends of 20 ms`);
      assert.deepEqual(warnings, []);
    });

    it('close() says what it still waits for while a memory queue drains and sends are in flight', async (t) => {
      const cfg = config(
        [
          dest('mem', { extra: 'durability: memory, queue: { concurrency: 1 }' }),
          dest('disk', { extra: 'queue: { concurrency: 1 }' }),
        ],
        'shutdown_timeout: 15s',
      );
      const { logger, warnings } = warningsLogger('info');
      const fakes = {
        // Wide margins: a loaded machine may fire the first progress line late.
        mem: new FakeDestination('mem', () => sleep(50)),
        disk: new FakeDestination('disk', () => sleep(1500)),
      };
      const te = startEngine(cfg, fakes, cfg.storage.path, logger, { shutdownProgressInterval: 50 });
      t.after(() => te.close());
      await te.engine.route(makeEvents(20, 31));
      await waitUntil(
        () => fakes.mem.inFlight === 1 && fakes.disk.inFlight === 1,
        2000,
        () => 'first sends started',
      );
      await te.close();
      // Without these lines, a shutdown that sends on for up to shutdown_timeout says nothing after
      // "shutting down": it cannot be told from a hung one.
      const said = warnings.filter((w) => w.msg === LONG_SHUTDOWN_MSG);
      assert.ok(said.length >= 2, `${said.length} progress lines`);
      const first = said[0]!.waiting as Record<string, { inFlight: number; queued?: number }>;
      assert.equal(first.disk?.inFlight, 1);
      assert.equal(
        first.disk?.queued,
        undefined,
        'a durable queue is kept for the next start: not waited for',
      );
      assert.ok(first.mem!.queued! > 0 && first.mem!.queued! < 20, JSON.stringify(first));
      const queued = said.flatMap(
        (w) => (w.waiting as Record<string, { queued?: number }>).mem?.queued ?? [],
      );
      assert.deepEqual(
        queued,
        [...queued].sort((a, b) => b - a),
        'the memory queue only shrinks',
      );
      for (const w of said) assert.ok(typeof w.secondsLeft === 'number' && w.secondsLeft <= 15);
    });

    it('close() drops what a memory queue cannot send before the deadline, counted and logged, or hands it to a durable fallback', async (t) => {
      const cfg = config(
        [
          dest('lossy', { extra: 'durability: memory' }),
          dest('kept', { extra: 'durability: memory, fallback: spare' }),
          dest('spare', { extra: 'filter: { rules: ["no rule has this name"] }' }),
        ],
        'shutdown_timeout: 10s',
      );
      const { logger, warnings } = warningsLogger();
      // An hour's Retry-After: nothing can be sent before the deadline, so close() does not wait for it.
      const busy = failWith(http(503, 3_600_000));
      const te = start(t, cfg, { lossy: busy, kept: busy, spare: succeed }, cfg.storage.path, logger);
      const events = makeEvents(6, 23);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.lossy!.sends.length > 0 && te.fakes.kept!.sends.length > 0,
        5000,
        () => 'both destinations failing',
      );
      const t0 = Date.now();
      await te.close();
      assert.ok(Date.now() - t0 < 5000, `close() took ${Date.now() - t0} ms`);
      // Only this counter: the queue gauges read a journal that is closed now.
      const metrics = await te.metrics.registry.getSingleMetricAsString('eyrie_delivery_events_total');
      assert.equal(deliveryEvents(metrics, 'lossy', 'dropped', 'shutdown'), 6);
      assert.equal(deliveryEvents(metrics, 'kept', 'fallback', 'shutdown'), 6);
      assert.equal(deliveryEvents(metrics, 'kept', 'dropped'), 0);
      const said = warnings
        .filter((w) => String(w.msg).startsWith('shutdown'))
        .map((w) => [w.destination, w.events, w.msg]);
      assert.deepEqual(said, [
        ['lossy', 6, 'shutdown: events queued in memory (durability: memory) were not sent and are lost'],
        [
          'kept',
          6,
          'shutdown: events not sent from memory handed to the fallback, sent after the next start',
        ],
      ]);
      // The fallback's journal queue has them: the next start delivers them there.
      const again = start(t, cfg, { lossy: succeed, kept: succeed, spare: succeed });
      await waitUntil(
        () => again.fakes.spare!.delivered.length === 6,
        5000,
        () => `${again.fakes.spare!.delivered.length}/6 delivered by the fallback`,
      );
      assertExactlyOnce(again.fakes.spare!, uuids(events));
      assert.deepEqual(again.fakes.lossy!.sends, []);
    });

    it('a queue that cannot be read (a damaged journal) makes its destination unhealthy until a claim succeeds', async (t) => {
      const cfg = config([dest('stuck', { extra: 'queue: { concurrency: 1 }' })], 'shutdown_timeout: 20ms');
      const claim = t.mock.method(SqliteQueue.prototype, 'claim', () => {
        throw new Error('database disk image is malformed');
      });
      const te = start(t, cfg, { stuck: succeed });
      await te.engine.route(makeEvents(3, 41));
      const stuck = () => te.engine.health().find((h) => h.name === 'stuck')!;
      await waitUntil(
        () => !stuck().healthy,
        5000,
        () => `health: ${JSON.stringify(stuck())}`,
      );
      assert.equal(stuck().lastError, 'cannot read the queue: database disk image is malformed');
      assert.equal(stuck().queued, 3);
      claim.mock.restore();
      await waitUntil(
        () => stuck().healthy && te.fakes.stuck!.delivered.length === 3,
        5000,
        () => `health: ${JSON.stringify(stuck())}`,
      );
    });

    it('close() hands what a memory queue holds down a memory fallback to a durable one after it', async (t) => {
      // first (memory) -> second (memory, capped at 2) -> spare (disk): neither memory destination can
      // send before the deadline; spare is routed nothing itself.
      const cfg = config(
        [
          dest('first', { extra: 'durability: memory, fallback: second' }),
          dest('second', {
            extra:
              'durability: memory, fallback: spare, queue: { max_events: 2 }, filter: { rules: ["no rule has this name"] }',
          }),
          dest('spare', { extra: 'filter: { rules: ["no rule has this name"] }' }),
        ],
        'shutdown_timeout: 10s',
      );
      const busy = failWith(http(503, 3_600_000));
      const te = start(t, cfg, { first: busy, second: busy, spare: succeed });
      const events = makeEvents(6, 31);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.first!.sends.length > 0,
        5000,
        () => 'first failing',
      );
      await te.close();
      const metrics = await te.metrics.registry.getSingleMetricAsString('eyrie_delivery_events_total');
      assert.equal(deliveryEvents(metrics, 'first', 'dropped'), 0, 'first dropped nothing');
      assert.equal(deliveryEvents(metrics, 'second', 'dropped'), 0, 'second dropped nothing');
      // Every one of them is in spare's journal queue (4 turned away by second's cap, 2 at its shutdown).
      assert.deepEqual(sorted(queuedUuids(te.dataDir, 'spare')), sorted(uuids(events)));
    });

    it('close() lets a memory fallback deliver what its destination gives up while it finishes', async (t) => {
      const cfg = config(
        [
          dest('a', { extra: 'durability: memory, fallback: m, queue: { concurrency: 1 }' }),
          dest('m', { extra: 'durability: memory, filter: { rules: ["no rule has this name"] }' }),
        ],
        'shutdown_timeout: 10s',
      );
      // Each send of a takes 100 ms and is refused for good: handed to m, one by one, during the close.
      const slowRefusal: Behaviour = async () => {
        await sleep(100);
        throw http(400)();
      };
      const te = start(t, cfg, { a: slowRefusal, m: succeed });
      const events = makeEvents(5, 24);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.a!.inFlight === 1,
        2000,
        () => 'a sending',
      );
      await te.close();
      assertExactlyOnce(te.fakes.m!, uuids(events));
      const metrics = await te.metrics.registry.getSingleMetricAsString('eyrie_delivery_events_total');
      assert.equal(deliveryEvents(metrics, 'm', 'dropped'), 0);
    });

    it('close() logs the memory events a full fallback turned away as lost, not only as handed over', async (t) => {
      const cfg = config(
        [
          dest('kept', { extra: 'durability: memory, fallback: spare' }),
          dest('spare', {
            extra:
              'filter: { rules: ["no rule has this name"] }, queue: { max_events: 2, when_full: drop_newest }',
          }),
        ],
        'shutdown_timeout: 10s',
      );
      const { logger, warnings } = warningsLogger();
      const busy = failWith(http(503, 3_600_000));
      const te = start(t, cfg, { kept: busy, spare: succeed }, cfg.storage.path, logger);
      await te.engine.route(makeEvents(6, 26));
      await waitUntil(
        () => te.fakes.kept!.sends.length > 0,
        5000,
        () => 'kept failing',
      );
      await te.close();
      const metrics = await te.metrics.registry.getSingleMetricAsString('eyrie_delivery_events_total');
      assert.equal(deliveryEvents(metrics, 'spare', 'dropped', 'queue_full_newest'), 4);
      assert.equal(queuedUuids(cfg.storage.path, 'spare').length, 2);
      // The metrics listener has closed by then: the log is the only account of the 4 lost events.
      assert.ok(
        warnings.some(
          (w) => w.destination === 'kept' && w.events === 4 && String(w.msg).includes('they are lost'),
        ),
        JSON.stringify(warnings),
      );
    });

    it('close() does not hand memory events to a durable fallback whose journal file was removed', async (t) => {
      const cfg = config(
        [
          dest('kept', { extra: 'durability: memory, fallback: spare' }),
          dest('spare', { extra: 'filter: { rules: ["no rule has this name"] }' }),
        ],
        'shutdown_timeout: 10s',
      );
      const { logger, warnings } = warningsLogger();
      const te = start(
        t,
        cfg,
        { kept: failWith(http(503, 3_600_000)), spare: succeed },
        cfg.storage.path,
        logger,
      );
      rmSync(join(cfg.storage.path, 'eyrie.db'));
      rmSync(join(cfg.storage.path, 'eyrie.db-wal'), { force: true });
      const events = makeEvents(4, 25);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.kept!.sends.length > 0,
        5000,
        () => 'kept failing',
      );
      await te.close();
      const metrics = await te.metrics.registry.getSingleMetricAsString('eyrie_delivery_events_total');
      assert.equal(deliveryEvents(metrics, 'kept', 'fallback', 'shutdown'), 0);
      assert.equal(deliveryEvents(metrics, 'kept', 'dropped', 'shutdown'), 4);
      assert.ok(
        warnings.some((w) => w.events === 4 && String(w.msg).includes('were not sent and are lost')),
        JSON.stringify(warnings),
      );
    });

    it('close() releases what is still held at shutdown_timeout; a new engine delivers it (at least once)', async (t) => {
      const cfg = config([dest('stuck', { extra: 'queue: { concurrency: 2 }' })], 'shutdown_timeout: 200ms');
      const te = start(t, cfg, { stuck: hang });
      const fake = te.fakes.stuck!;
      fake.rejectHangsOnClose = false;
      const events = makeEvents(5, 22);
      await te.engine.route(events);
      await waitUntil(
        () => fake.inFlight === 2,
        2000,
        () => 'two sends in flight',
      );
      const t0 = Date.now();
      await te.close();
      const took = Date.now() - t0;
      assert.ok(took >= 190 && took < 7500, `close() took ${took} ms: stopped at the deadline, not hung`);
      const rows = query<{ leased: number; due_at: number }>(
        cfg.storage.path,
        'SELECT leased, due_at FROM deliveries',
      );
      assert.equal(rows.length, 5, 'everything still queued');
      assert.ok(
        rows.every((r) => r.leased === 0 && r.due_at <= Date.now()),
        'released entries are due at once',
      );

      // The stuck sends finish late, after the journal closed: they must not touch it.
      const unhandled: unknown[] = [];
      const onUnhandled = (err: unknown) => unhandled.push(err);
      process.on('unhandledRejection', onUnhandled);
      t.after(() => process.off('unhandledRejection', onUnhandled));
      fake.settleHangs();
      await sleep(50);
      assert.deepEqual(unhandled, []);
      assert.equal(fake.delivered.length, 2);

      await redeliveredOnce(t, cfg, 'stuck', events);
    });

    it('close() still resolves when the release at shutdown_timeout cannot be written; the entries come back at the next start', async (t) => {
      const cfg = config([dest('stuck', { extra: 'queue: { concurrency: 1 }' })], 'shutdown_timeout: 200ms');
      const te = start(t, cfg, { stuck: hang });
      te.fakes.stuck!.rejectHangsOnClose = false;
      const events = makeEvents(2, 26);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.stuck!.inFlight === 1,
        2000,
        () => 'a send in flight',
      );
      const db = openSqlite(join(te.dataDir, 'eyrie.db'));
      db.exec(
        `CREATE TRIGGER refuse BEFORE UPDATE ON deliveries BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END`,
      );
      await te.close();
      assert.equal(query(cfg.storage.path, 'SELECT id FROM deliveries').length, 2, 'nothing lost');
      db.exec('DROP TRIGGER refuse');
      db.close();

      await redeliveredOnce(t, cfg, 'stuck', events);
    });
  });

  describe('configuration changes', () => {
    /** Runs `cfg` until `events` are routed (and `settled` holds), then stops: its journal keeps the rest. */
    async function leaveJournal(
      t: TestContext,
      cfg: EyrieConfig,
      behaviours: Record<string, Behaviour>,
      events: FalcoEvent[],
      settled?: () => boolean,
    ): Promise<void> {
      const first = start(t, cfg, behaviours);
      for (const fake of Object.values(first.fakes)) fake.rejectHangsOnClose = false;
      await first.engine.route(events);
      if (settled) await waitUntil(settled, 2000, () => 'settled before the stop');
      await first.close();
    }

    /** The warnings matching `pattern` that an engine on `cfg` logs as it starts on `dataDir`. */
    function warningsAtStart(
      t: TestContext,
      cfg: EyrieConfig,
      behaviours: Record<string, Behaviour>,
      dataDir: string,
      pattern: RegExp,
    ): Record<string, unknown>[] {
      const { logger, warnings } = warningsLogger();
      start(t, cfg, behaviours, dataDir, logger);
      return warnings.filter((w) => pattern.test(String(w.msg)));
    }

    it('warns at start about entries queued for a destination no longer configured (kept, not read)', async (t) => {
      const before = config([dest('old', { extra: 'queue: { concurrency: 1 }' })], 'shutdown_timeout: 50ms');
      await leaveJournal(t, before, { old: hang }, makeEvents(3, 27));

      const after = config([dest('new'), dest('old', { extra: 'durability: memory' })]);
      const orphaned = warningsAtStart(
        t,
        after,
        { new: succeed, old: succeed },
        before.storage.path,
        /no durable queue for/,
      );
      assert.deepEqual(
        orphaned.map(({ destination, events }) => ({ destination, events })),
        [{ destination: 'old', events: 3 }],
      );
      await sleep(100);
      assert.equal(queuedUuids(before.storage.path, 'old').length, 3, 'kept');
    });

    it('logs at start what each durable queue resumes: its entries, bytes and the age of the oldest', async (t) => {
      const before = config(
        [dest('backlog', { extra: 'queue: { concurrency: 1 }' })],
        'shutdown_timeout: 50ms',
      );
      await leaveJournal(t, before, { backlog: hang }, makeEvents(4, 31));

      const after = config([dest('backlog'), dest('empty')]);
      const { logger, warnings: lines } = warningsLogger('info');
      start(t, after, { backlog: hang, empty: hang }, before.storage.path, logger);
      const resumed = lines.filter((l) => /resuming the entries queued/.test(String(l.msg)));
      assert.deepEqual(
        resumed.map(({ destination, events }) => ({ destination, events })),
        [{ destination: 'backlog', events: 4 }],
      );
      assert.ok(Number(resumed[0]!.bytes) > 0);
      assert.ok(Number(resumed[0]!.oldestAgeSeconds) >= 0 && Number(resumed[0]!.oldestAgeSeconds) < 60);
    });

    it('warns at start about a queue that holds more than its caps, lowered since (its next event would drop the excess)', async (t) => {
      const before = config([dest('full', { extra: 'queue: { concurrency: 1 }' })], 'shutdown_timeout: 50ms');
      await leaveJournal(t, before, { full: hang }, makeEvents(5, 29));

      const after = config([dest('full', { extra: 'queue: { max_events: 2 }' })]);
      const over = warningsAtStart(t, after, { full: hang }, before.storage.path, /more than its caps/);
      assert.deepEqual(
        over.map(({ destination, events, maxEvents, whenFull }) => ({
          destination,
          events,
          maxEvents,
          whenFull,
        })),
        [{ destination: 'full', events: 5, maxEvents: 2, whenFull: 'drop_oldest' }],
      );
    });

    it('warns at start about queued entries and dead letters left in the journal when no destination is durable any more', async (t) => {
      const before = config(
        [dest('old', { extra: 'queue: { concurrency: 1 }' }), dest('rejected')],
        'shutdown_timeout: 50ms',
      );
      await leaveJournal(
        t,
        before,
        { old: hang, rejected: failWith(http(400)) },
        makeEvents(3, 28),
        () => query(before.storage.path, 'SELECT id FROM dead_letters').length === 3,
      );

      // Only memory destinations now: no journal is opened, but what it holds must not go unsaid.
      const after = config([dest('old', { extra: 'durability: memory' })]);
      const orphaned = warningsAtStart(
        t,
        after,
        { old: succeed },
        before.storage.path,
        /no durable queue for/,
      );
      assert.deepEqual(
        orphaned.map(({ destination, events, deadLetters }) => ({ destination, events, deadLetters })),
        [
          { destination: 'old', events: 3, deadLetters: undefined },
          { destination: 'rejected', events: undefined, deadLetters: 3 },
        ],
      );
      assert.equal(queuedUuids(before.storage.path, 'old').length, 3, 'kept');
    });
  });

  describe('journal failures', () => {
    it('a commit held up for seconds is logged and counted in a histogram bucket above 1 s', async (t) => {
      const cfg = config([dest('a')]);
      const { logger, warnings } = warningsLogger();
      const te = start(t, cfg, { a: succeed }, cfg.storage.path, logger);
      // Released just before the commit, the lock is held 3 s more: the commit waits for most of
      // them, even on a loaded machine.
      const { release, exited } = await lockJournalElsewhere(te.dataDir, 3000);
      release();
      await te.engine.route(makeEvents(2, 41));
      assert.deepEqual(await exited, [0, null]);
      const metrics = await te.metrics.text();
      const slow = warnings.filter((w) => /journal write held the event loop/.test(String(w.msg)));
      assert.equal(slow.length, 1, JSON.stringify(warnings));
      assert.ok(Number(slow[0]!.seconds) >= 1, JSON.stringify(slow[0]));
      assert.equal(metricValue(metrics, 'eyrie_journal_commit_seconds_bucket', { le: '1' }), 0);
      assert.equal(
        metricValue(metrics, 'eyrie_journal_commit_seconds_bucket', { le: '5' }),
        1,
        'a stall of seconds shows its size, not only "over 1 s"',
      );
    });

    it('an ack held up for seconds is counted, though no commit was slow; both counters start at 0', async (t) => {
      const cfg = config([dest('a', { extra: 'queue: { concurrency: 1 }' })]);
      const { logger, warnings } = warningsLogger();
      const te = start(t, cfg, { a: hang }, cfg.storage.path, logger);
      const before = await te.metrics.text();
      assert.match(
        before,
        /^eyrie_journal_slow_writes_total 0$/m,
        'an alert on increase() sees the first one',
      );
      assert.match(before, /^eyrie_journal_unrecorded_results_total 0$/m);
      await te.engine.route(makeEvents(1, 42));
      await waitUntil(
        () => te.fakes.a!.inFlight === 1,
        2000,
        () => 'in flight',
      );
      // The send is in flight; another process takes the write lock for 3 s, then the send succeeds:
      // its ack (not a commit) waits in SQLite's busy handler, on the event loop.
      const { release, exited } = await lockJournalElsewhere(te.dataDir, 3000);
      release();
      te.fakes.a!.settleHangs();
      assert.deepEqual(await exited, [0, null]);
      await waitUntil(
        () => warnings.some((w) => /journal write held the event loop/.test(String(w.msg))),
        5000,
        () => JSON.stringify(warnings),
      );
      const metrics = await te.metrics.text();
      assert.equal(
        metricValue(metrics, 'eyrie_journal_commit_seconds_bucket', { le: '1' }),
        1,
        'the commit was quick',
      );
      assert.equal(metricValue(metrics, 'eyrie_journal_slow_writes_total'), 1);
    });

    it('route() rejects with JournalUnavailableError when the journal is over its disk cap', async (t) => {
      const cfg = config([dest('a'), dest('m', { extra: 'durability: memory' })], 'disk_cap: 1');
      const te = start(t, cfg, { a: succeed, m: succeed });
      const events = makeEvents(3, 23);
      await assert.rejects(async () => te.engine.route(events), JournalUnavailableError);
      await assert.rejects(
        async () => te.engine.route(events),
        (err: Error) => err.name === 'JournalUnavailableError' && /disk cap/.test(err.message),
      );
      const journal = te.engine.journalHealth();
      assert.equal(journal.ok, false, '/healthz says why ingest answers 503');
      assert.match(journal.detail ?? '', /over delivery\.disk_cap \(1 bytes\)/);
      await sleep(100);
      assert.deepEqual(te.fakes.a!.sends, [], 'nothing refused is delivered');
      assert.equal(
        te.engine.health().find((h) => h.name === 'm')!.queued,
        0,
        'not even queued in memory: the sender will send it again',
      );
      assert.deepEqual(te.fakes.m!.sends, [], 'nor delivered by the memory destination');
      assert.deepEqual(queuedUuids(te.dataDir, 'a'), []);
    });

    it('shows the bytes disk_cap limits and the cap, so an alert can warn before the 503s', async (t) => {
      const cfg = config([dest('a')], 'shutdown_timeout: 200ms, disk_cap: 1MiB');
      const te = start(t, cfg, { a: failWith(http(503)) });
      const bytes = async () => {
        const text = await te.metrics.text();
        return [
          metricValue(text, 'eyrie_journal_used_bytes'),
          metricValue(text, 'eyrie_journal_disk_cap_bytes'),
        ];
      };
      const [empty, cap] = await bytes();
      assert.equal(cap, 1024 * 1024);
      assert.ok(empty! > 0 && empty! < 1024 * 1024, `${empty} bytes in use`);
      await te.engine.route(makeEvents(500, 24));
      const [used] = await bytes();
      assert.ok(used! >= empty! + 500 * 500, `${used} bytes in use after 500 events (${empty} before)`);
      const memoryOnly = start(t, config([dest('m', { extra: 'durability: memory' })]), { m: succeed });
      assert.doesNotMatch(
        await memoryOnly.metrics.text(),
        /eyrie_journal_(used|disk_cap)_bytes/,
        'no journal',
      );
    });

    it('over the disk cap, events only for durability: memory destinations are still taken', async (t) => {
      const never = 'filter: { rules: ["no rule has this name"] }';
      const cfg = config(
        [dest('d', { extra: never }), dest('m', { extra: 'durability: memory' })],
        'disk_cap: 1',
      );
      const te = start(t, cfg, { d: succeed, m: succeed });
      assert.equal(te.engine.journalHealth().ok, false, 'over the cap');
      const events = makeEvents(3, 34);
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.m!.delivered.length === 3,
        5000,
        () => `${te.fakes.m!.delivered.length}/3 delivered by the memory destination`,
      );
    });

    it('a batch the journal refuses counts no routing decision (its sender sends it again)', async (t) => {
      const cfg = config([dest('a'), dest('f', { extra: 'filter: { rules: ["no rule has this name"] }' })]);
      const te = start(t, cfg, { a: succeed, f: succeed });
      const commits = journalWrites(t, te);
      commits.fail();
      const events = makeEvents(3, 33);
      await assert.rejects(async () => te.engine.route(events), JournalUnavailableError);
      const decisions = async (labels: Record<string, string>) =>
        metricValue(await te.metrics.text(), 'eyrie_routing_events_total', labels);
      assert.equal(await decisions({ destination: 'a' }), 0);
      assert.equal(await decisions({ destination: 'f' }), 0);
      commits.work();
      await te.engine.route(events);
      assert.equal(await decisions({ destination: 'a', decision: 'routed' }), 3);
      assert.equal(await decisions({ destination: 'f', decision: 'filtered' }), 3);
      assert.equal(await decisions({}), 6, 'each decision counted once');
    });

    it('the disk cap counts the data in use: once the backlog drained, ingest is let in again', async (t) => {
      const cfg = config([dest('a', { extra: 'queue: { concurrency: 1 }' })], 'disk_cap: 1MiB');
      const te = start(t, cfg, { a: failWith(refused) });
      const big = (n: number) =>
        uniformEvents(n).map((e) => ({ ...e, output: `${e.output} ${'x'.repeat(4000)}` }));
      let accepted = 0;
      let refusedAt: number | undefined;
      for (let i = 0; i < 200 && refusedAt === undefined; i++) {
        try {
          await te.engine.route(big(50));
          accepted += 50;
        } catch (err) {
          assert.ok(err instanceof JournalUnavailableError && /disk cap/.test(err.message), String(err));
          refusedAt = i;
        }
        await sleep(i % 5 === 0 ? 260 : 0); // let the cap check (every 250 ms) see the growth
      }
      assert.ok(refusedAt !== undefined, `refused once over 1 MiB (accepted ${accepted})`);
      assert.equal(te.engine.journalHealth().ok, false, 'degraded while over the cap');
      await waitUntil(
        () => !te.engine.health()[0]!.healthy,
        5000,
        () => 'the failing destination degraded',
      );
      assert.equal(
        te.engine.health(Date.now() + FAILED_DESTINATION_HEALTH_WINDOW_MS + 1)[0]!.healthy,
        false,
        'failing with entries queued: degraded however long ago it last failed',
      );
      te.fakes.a!.behaviour = succeed;
      await waitUntil(
        () => te.fakes.a!.delivered.length >= accepted,
        15_000,
        () => `${te.fakes.a!.delivered.length}/${accepted} delivered`,
      );
      await waitUntil(
        () => te.engine.health()[0]!.queued === 0,
        5000,
        () => 'acks written',
      );
      await sleep(300);
      assert.deepEqual(te.engine.journalHealth(), { ok: true }, 'healthy again once under the cap');
      await te.engine.route(big(1));
      assert.equal(
        (te.engine.health()[0]!.queued ?? 0) + te.fakes.a!.delivered.length,
        accepted + 1,
        'accepted again',
      );
    });

    it('route() rejects with JournalUnavailableError when a commit fails, and recovers when it works again', async (t) => {
      const cfg = config(
        [dest('a', { extra: 'queue: { concurrency: 1 }' }), dest('m', { extra: 'durability: memory' })],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, { a: hang, m: succeed });
      const events = makeEvents(6, 24);
      // Another connection makes every write of the journal fail, as a full or broken disk would.
      const commits = journalWrites(t, te);
      commits.fail();
      const settled = Promise.resolve(te.engine.route(events.slice(0, 3))).then(
        () => 'resolved',
        (err: unknown) => err,
      );
      const outcome = await settled;
      assert.ok(
        outcome instanceof JournalUnavailableError,
        `rejected with JournalUnavailableError, got ${String(outcome)}`,
      );
      assert.match(outcome.message, /simulated write failure/);
      assert.equal(te.engine.journalHealth().ok, false);
      assert.deepEqual(queuedUuids(te.dataDir, 'a'), []);
      let metrics = await te.metrics.text();
      assert.equal(
        metricValue(metrics, 'eyrie_queue_depth', { destination: 'a' }),
        0,
        'the rolled-back commit is not counted',
      );

      assert.equal(
        te.engine.health().find((h) => h.name === 'm')!.queued,
        0,
        'a memory destination does not take a refused batch',
      );

      commits.work();
      await te.engine.route(events.slice(3));
      await waitUntil(
        () => te.fakes.m!.delivered.length === 3,
        2000,
        () => 'memory destination delivers the accepted batch',
      );
      assertExactlyOnce(te.fakes.m!, uuids(events.slice(3)));
      assert.equal(te.engine.journalHealth().ok, true);
      assert.deepEqual(queuedUuids(te.dataDir, 'a'), uuids(events.slice(3)));
      metrics = await te.metrics.text();
      assert.equal(metricValue(metrics, 'eyrie_queue_depth', { destination: 'a' }), 3);
    });

    it('a commit that fails counts no queue-cap drop: nothing was dropped, the batch was refused', async (t) => {
      const cfg = config(
        [
          dest('capped', { extra: 'queue: { concurrency: 1, max_events: 1, when_full: drop_newest }' }),
          dest('b'),
        ],
        'shutdown_timeout: 20ms',
      );
      const te = start(t, cfg, { capped: hang, b: succeed });
      const [first, second] = makeEvents(2, 28);
      await te.engine.route([first!]);
      const commits = journalWrites(t, te);
      commits.fail();
      await assert.rejects(async () => te.engine.route([second!]), JournalUnavailableError);
      const metrics = await te.metrics.text();
      assert.equal(deliveryEvents(metrics, 'capped', 'dropped'), 0);
      commits.work();
      await te.engine.route([second!]);
      const after = await te.metrics.text();
      assert.equal(
        deliveryEvents(after, 'capped', 'dropped', 'queue_full_newest'),
        1,
        'counted once the commit that drops it succeeds',
      );
    });

    it('a batch refused by a failed commit leaves no dedup key behind (the sender retries it)', async (t) => {
      const te = start(t, config([dest('d', { extra: 'dedup: { window: 1m }' })]), { d: succeed });
      const [event] = makeEvents(1, 26);
      const commits = journalWrites(t, te);
      commits.fail();
      await assert.rejects(async () => te.engine.route([event!]), JournalUnavailableError);
      commits.work();
      await te.engine.route([event!]);
      await waitUntil(
        () => te.fakes.d!.delivered.length === 1,
        500,
        () => 'the retried event is delivered, not deduplicated',
      );
    });

    it('a refused batch pushes no key of a taken event out of a full dedup table', async (t) => {
      const cfg = config([dest('d', { extra: 'dedup: { window: 1h, fields: [proc.name] }' })]);
      const te = startEngine(cfg, { d: new FakeDestination('d', succeed) }, cfg.storage.path, undefined, {
        dedupMaxKeys: 3,
      });
      t.after(() => te.close());
      const named = (name: string) => ({ ...makeEvents(1, 28)[0]!, output_fields: { 'proc.name': name } });
      await te.engine.route(['a', 'b', 'c'].map(named)); // the table is full
      const commits = journalWrites(t, te);
      commits.fail();
      await assert.rejects(async () => te.engine.route(['x', 'y'].map(named)), JournalUnavailableError);
      commits.work();
      await te.engine.route(['a', 'b', 'c'].map(named));
      assert.equal(
        metricValue(await te.metrics.text(), 'eyrie_routing_events_total', { decision: 'deduplicated' }),
        3,
        'a, b and c are still remembered',
      );
    });

    /**
     * A durable destination `disk` for events of host `disk-host` only, beside a memory destination
     * `mem` that deduplicates on proc.name with room for 3 keys: events for `mem` alone are taken at
     * once, with no commit.
     */
    function diskBesideDedupedMemory(t: TestContext) {
      const cfg = config([
        dest('disk', { extra: 'filter: { hostnames: ["disk-host"] }' }),
        dest('mem', { extra: 'durability: memory, dedup: { window: 1h, fields: [proc.name] }' }),
      ]);
      const fakes = { disk: new FakeDestination('disk', succeed), mem: new FakeDestination('mem', succeed) };
      const te = startEngine(cfg, fakes, cfg.storage.path, undefined, { dedupMaxKeys: 3 });
      t.after(() => te.close());
      const events = (hostname: string, names: string[]) =>
        names.map((name) => ({ ...makeEvents(1, 30)[0]!, hostname, output_fields: { 'proc.name': name } }));
      return {
        te,
        commits: journalWrites(t, te),
        forBoth: (names: string[]) => events('disk-host', names),
        memoryOnly: (names: string[]) => events('mem-host', names),
        memDeduplicated: async () =>
          metricValue(await te.metrics.text(), 'eyrie_routing_events_total', {
            destination: 'mem',
            decision: 'deduplicated',
          }),
      };
    }

    it('a refused batch evicts no taken key even when a batch taken meanwhile fills the table', async (t) => {
      const { te, commits, forBoth, memoryOnly, memDeduplicated } = diskBesideDedupedMemory(t);
      assert.equal(
        te.engine.route(memoryOnly(['a', 'b', 'c'])),
        undefined,
        'taken at once: the table is full',
      );
      commits.fail();
      const refused = te.engine.route(forBoth(['x', 'y'])); // its commit is pending
      assert.equal(te.engine.route(memoryOnly(['z'])), undefined, 'taken at once: one key must go');
      await assert.rejects(async () => refused, JournalUnavailableError);
      commits.work();
      assert.equal(te.engine.route(memoryOnly(['a', 'b', 'c'])), undefined);
      assert.equal(
        await memDeduplicated(),
        2,
        'only a, the oldest, made room for z; b and c are still remembered',
      );
    });

    it('a refused batch does not forget the key of an event taken after its own key was evicted', async (t) => {
      const { te, commits, forBoth, memoryOnly, memDeduplicated } = diskBesideDedupedMemory(t);
      assert.equal(te.engine.route(memoryOnly(['a', 'b', 'c'])), undefined);
      commits.fail();
      const refused = te.engine.route(forBoth(['x'])); // its commit is pending
      assert.equal(te.engine.route(memoryOnly(['d', 'e', 'f', 'g'])), undefined, 'x is evicted meanwhile');
      assert.equal(te.engine.route(memoryOnly(['x'])), undefined, 'so this x is taken, with its own key');
      await assert.rejects(async () => refused, JournalUnavailableError);
      commits.work();
      assert.equal(te.engine.route(memoryOnly(['x'])), undefined);
      assert.equal(await memDeduplicated(), 1, 'the taken x keeps its key: its repeat is deduplicated');
    });

    it('a duplicate of an event whose commit is pending shares its fate: refused too when that commit fails', async (t) => {
      const te = start(
        t,
        config([
          dest('d', { extra: 'dedup: { window: 1m }' }),
          dest('m', { extra: 'durability: memory, dedup: { window: 1m }' }),
        ]),
        { d: succeed, m: succeed },
      );
      const [event] = makeEvents(1, 27);
      const commits = journalWrites(t, te);
      commits.fail();
      // Both before the group commit: the second is a duplicate for both destinations.
      const first = te.engine.route([event!]);
      const second = te.engine.route([{ ...event!, uuid: randomUUID() }]);
      assert.ok(second instanceof Promise, 'the duplicate waits for the pending commit');
      await assert.rejects(async () => first, JournalUnavailableError);
      await assert.rejects(async () => second, JournalUnavailableError);
      commits.work();
      await te.engine.route([event!]);
      await waitUntil(
        () => te.fakes.d!.delivered.length === 1 && te.fakes.m!.delivered.length === 1,
        2000,
        () => 'the resent event is delivered by both, not deduplicated',
      );
      await sleep(50);
      // Only the resent event: the refused duplicate (another uuid) was not queued in memory.
      assert.deepEqual(te.fakes.m!.delivered, [event!.uuid]);
      assert.deepEqual(te.fakes.d!.delivered, [event!.uuid]);
    });

    it('route() rejects once the engine is closed (and an idle engine closes at once)', async (t) => {
      const te = start(
        t,
        config(
          [dest('a'), dest('b', { type: 'eyrie', extra: 'batch: { timeout: 15s }' })],
          'shutdown_timeout: 30s',
        ),
        {
          a: succeed,
          b: succeed,
        },
      );
      // Timed from a started engine: a close right after the start also waits for the checkpoint
      // thread to finish loading (hundreds of ms under coverage), which is not what this guards.
      await te.engine.ready();
      const t0 = Date.now();
      await te.close();
      // Far below the batch timeout and the deadline: neither was waited for.
      assert.ok(Date.now() - t0 < 7500, `close() of an idle engine took ${Date.now() - t0} ms`);
      await assert.rejects(async () => te.engine.route(makeEvents(1, 25)), JournalUnavailableError);
    });

    it('route() waits (a promise) only for a journal commit; memory routes are done at once', async (t) => {
      const delivered: FalcoEvent[] = [];
      const memoryOnly = start(t, config([dest('m', { extra: 'durability: memory' })]), {
        m: (events) => {
          delivered.push(...events);
        },
      });
      // Nothing to wait for: no promise (the ingest hot path answers without a microtask turn).
      assert.equal(memoryOnly.engine.route(makeEvents(2, 26)), undefined);
      await waitUntil(
        () => delivered.length === 2,
        5000,
        () => `${delivered.length} delivered`,
      );
      await memoryOnly.close();
      // Closed: refused, and still as a rejected promise, never a synchronous throw.
      const refused = memoryOnly.engine.route(makeEvents(1, 27));
      assert.ok(refused instanceof Promise);
      await assert.rejects(refused, JournalUnavailableError);

      const durable = start(t, config([dest('a')]), { a: succeed });
      const pending = durable.engine.route(makeEvents(1, 28));
      assert.ok(pending instanceof Promise, 'a durable route resolves after the commit');
      await pending;
    });
  });
});
