import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  FakeDestination,
  makeEvents,
  metricValue,
  removeConfigDirs,
  sleep,
  startEngine,
  tempConfig,
  waitUntil,
  type Behaviour,
} from './helpers/delivery.ts';
import { HttpStatusError } from '../src/delivery/errors.ts';

const HOUR = 3600_000;

/**
 * Steps the wall clock (Date.now) by `ms` from now on, as an NTP step or a corrected clock would;
 * timers and performance.now() keep counting real time, as they do under such a step.
 */
function clock(t: TestContext) {
  const real = Date.now.bind(Date);
  let offset = 0;
  t.mock.method(Date, 'now', () => real() + offset);
  return { step: (ms: number) => (offset += ms) };
}

function start(t: TestContext, yaml: string, behaviour: Behaviour) {
  const cfg = tempConfig(
    `log: { level: silent }\ndelivery: { shutdown_timeout: 200ms }\ndestinations:\n${yaml}\n`,
  );
  const te = startEngine(cfg, { d: new FakeDestination('d', behaviour) });
  t.after(() => te.close());
  return te;
}

describe('wall-clock steps while delivering', { timeout: 60_000 }, () => {
  after(removeConfigDirs);

  for (const durability of ['disk', 'memory']) {
    it(`${durability}: a step back of an hour during a retry backoff does not hold the retry for an hour`, async (t) => {
      const c = clock(t);
      const te = start(
        t,
        `  - { name: d, type: stdout, durability: ${durability}, retry: { initial_interval: 300ms, max_interval: 300ms, jitter: 0 } }`,
        (events, fake) => {
          if (fake.attemptsOf(events[0]!.uuid) === 1) throw new HttpStatusError(503, 'status 503');
        },
      );
      const [event] = makeEvents(1, 21);
      await te.engine.route([event!]);
      await waitUntil(
        () => te.fakes.d!.sends.length === 1,
        3000,
        () => 'first attempt',
      );
      await sleep(50); // the reschedule (due in 300 ms) is written
      c.step(-HOUR);
      await waitUntil(
        () => te.fakes.d!.delivered.length === 1,
        3000,
        () => `retried within seconds, not an hour later (${te.fakes.d!.sends.length} sends)`,
      );
    });

    it(`${durability}: a step forward of an hour during a send does not send the entry a second time`, async (t) => {
      const c = clock(t);
      let release: (() => void) | undefined;
      const te = start(
        t,
        `  - { name: d, type: stdout, durability: ${durability}, queue: { concurrency: 2 } }`,
        (events, fake) =>
          fake.attemptsOf(events[0]!.uuid) === 1 ? new Promise<void>((r) => (release = r)) : undefined,
      );
      const [event] = makeEvents(1, 22);
      await te.engine.route([event!]);
      await waitUntil(
        () => te.fakes.d!.sends.length === 1,
        3000,
        () => 'first send',
      );
      c.step(HOUR);
      await te.engine.route(makeEvents(1, 23)); // wakes the other worker
      await sleep(1500);
      release?.();
      await sleep(100);
      assert.equal(te.fakes.d!.attemptsOf(event!.uuid), 1, 'the send in flight is not started again');
    });
  }

  it('a step back does not make the oldest-entry age negative', async (t) => {
    const c = clock(t);
    const te = start(t, '  - { name: d, type: stdout }', () => new Promise<void>(() => undefined));
    await te.engine.route(makeEvents(1, 24));
    c.step(-HOUR);
    const age = metricValue(await te.metrics.text(), 'eyrie_queue_oldest_age_seconds', { destination: 'd' });
    assert.ok(age >= 0, `age ${age}`);
  });

  it('a step back during a failure pause does not hold the worker for an hour', async (t) => {
    const c = clock(t);
    let failing = true;
    // One worker; every send fails until told otherwise, so the worker pauses after each.
    const te = start(
      t,
      '  - { name: d, type: stdout, queue: { concurrency: 1 }, retry: { initial_interval: 400ms, max_interval: 400ms, jitter: 0 } }',
      () => {
        if (failing) throw new HttpStatusError(503, 'status 503');
      },
    );
    await te.engine.route(makeEvents(1, 25));
    await waitUntil(
      () => te.fakes.d!.sends.length === 1,
      3000,
      () => 'first attempt',
    );
    c.step(-HOUR); // at once: the reschedule is written after the step, the pause began before
    failing = false;
    await te.engine.route(makeEvents(1, 26));
    await waitUntil(
      () => te.fakes.d!.delivered.length === 2,
      3000,
      () => `both delivered (${te.fakes.d!.delivered.length})`,
    );
  });
});
