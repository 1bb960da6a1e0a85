import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryQueue } from './memory-queue.ts';
import { makeEvents } from '../../test/helpers/delivery.ts';

const LEASE = 1_000;

/** A queue holding `count` events due at 0, and the drops it counted. */
function queueOf(count: number, caps: Partial<{ maxEvents: number; maxBytes: number }> = {}) {
  const drops: string[] = [];
  const queue = new MemoryQueue(
    'd',
    { maxEvents: caps.maxEvents ?? 0, maxBytes: caps.maxBytes ?? 0, whenFull: 'drop_oldest' },
    (reason, n) => drops.push(`${reason}:${n}`),
  );
  for (const event of makeEvents(count, 7)) queue.push(event, 0);
  return { queue, drops };
}

/** An entry claimed at 0 whose lease ran out, claimed again: the first claim's copy and the second's. */
function claimedTwice(queue: MemoryQueue) {
  const [stale] = queue.claim(0, 1, 0, LEASE);
  const [current] = queue.claim(LEASE, 1, 0, LEASE);
  assert.equal(current?.id, stale?.id, 'the same entry, claimed again after its lease ran out');
  assert.notEqual(current?.claim, stale?.claim);
  return { stale: stale!, current: current! };
}

describe('MemoryQueue claims', () => {
  it('ignores an ack made under a claim whose lease ran out; the current claim acks', () => {
    const { queue } = queueOf(1);
    const { stale, current } = claimedTwice(queue);
    queue.ack([stale]);
    assert.equal(queue.depth().count, 1, 'still queued: the current claim is sending it');
    queue.ack([current]);
    assert.equal(queue.depth().count, 0);
  });

  it('ignores a stale reschedule: the entry stays leased to the claim sending it', () => {
    const { queue } = queueOf(1);
    const { stale } = claimedTwice(queue);
    queue.reschedule([stale], LEASE + 1, 'HTTP 503', LEASE);
    assert.deepEqual(queue.claim(LEASE + 1, 1, 0, LEASE), [], 'not claimable a third time while leased');
    assert.equal(queue.nextDueAt(), 2 * LEASE, 'due again only at the current lease expiry');
  });

  it('hands a stale give-up to no fallback and counts nothing', () => {
    const { queue } = queueOf(1);
    const { queue: fallback } = queueOf(0);
    const { stale, current } = claimedTwice(queue);
    const result = queue.giveUp([{ entry: stale, reason: 'gave_up', error: 'x' }], fallback, LEASE);
    assert.deepEqual(result, { settled: 0, deadLetters: 0 });
    assert.equal(fallback.depth().count, 0, 'the fallback got nothing: the current claim sends it');
    assert.equal(queue.depth().count, 1);
    assert.deepEqual(queue.giveUp([{ entry: current, reason: 'gave_up', error: 'x' }], fallback, LEASE), {
      settled: 1,
      deadLetters: 0,
    });
    assert.equal(fallback.depth().count, 1);
    assert.equal(queue.depth().count, 0);
  });

  it('ignores a stale release, and settles nothing twice', () => {
    const { queue } = queueOf(1);
    const { stale, current } = claimedTwice(queue);
    queue.release([stale]);
    assert.deepEqual(queue.claim(LEASE + 1, 1, 0, LEASE), [], 'still leased to the current claim');
    queue.reschedule([current], 5_000, 'HTTP 503', LEASE + 1);
    queue.reschedule([current], 9_000, 'HTTP 503', LEASE + 2);
    assert.equal(queue.nextDueAt(), 5_000, 'the second settle of the same claim changed nothing');
  });

  it('keeps the attempts of a reschedule for the next claim', () => {
    const { queue } = queueOf(1);
    const [first] = queue.claim(0, 1, 0, LEASE);
    first!.attempts++;
    first!.firstAttemptAt = 0;
    queue.reschedule([first!], 10, 'HTTP 503', 5);
    const [second] = queue.claim(10, 1, 0, LEASE);
    assert.equal(second?.attempts, 1);
    assert.equal(second?.firstAttemptAt, 0);
  });

  it('counts an entry claimed again once against the cap of entries in flight', () => {
    const { queue, drops } = queueOf(1, { maxEvents: 2 });
    claimedTwice(queue);
    const [second, third] = makeEvents(2, 8);
    queue.push(second!, LEASE);
    queue.push(third!, LEASE);
    assert.deepEqual(drops, ['queue_full_oldest:1'], 'one entry in flight: the unleased one made room');
    assert.equal(queue.depth().count, 2);
  });

  it('claims by due time, then enqueue order, as the durable queue does', () => {
    const { queue } = queueOf(3);
    const [first] = queue.claim(0, 1, 0, LEASE);
    queue.reschedule([first!], 500, 'HTTP 503', 0);
    const ids = queue.claim(600, 10, 0, LEASE).map((e) => e.id);
    assert.deepEqual(ids, [2, 3, 1], 'the rescheduled entry comes after those due since enqueue');
  });

  it('stays correct while stale heap nodes are pruned (many claims and settles)', () => {
    const { queue } = queueOf(50);
    let now = 0;
    for (let round = 0; round < 200; round++) {
      now += 10;
      const claimed = queue.claim(now, 5, 0, LEASE);
      queue.reschedule(claimed, now + 5, 'HTTP 503', now);
    }
    const all = queue.claim(now + 10, 100, 0, LEASE);
    assert.equal(all.length, 50, 'every entry once');
    assert.equal(new Set(all.map((e) => e.id)).size, 50);
    queue.ack(all);
    assert.deepEqual(queue.depth(), { count: 0, bytes: 0, oldestEnqueuedAt: undefined });
    assert.equal(queue.nextDueAt(), undefined);
  });

  it('drops the oldest entries not in flight when full, and reports the oldest left', () => {
    const { queue, drops } = queueOf(3, { maxEvents: 3 });
    const [first] = queue.claim(0, 1, 0, LEASE); // id 1 in flight
    const [extra] = makeEvents(1, 9);
    queue.push(extra!, 5, 5);
    assert.deepEqual(drops, ['queue_full_oldest:1']);
    const ids = queue.claim(LEASE, 10, 0, LEASE).map((e) => e.id);
    assert.deepEqual(ids, [3, 4, 1], 'id 2 was dropped; id 1 is due again at its lease expiry');
    queue.ack([first!]);
    assert.equal(queue.depth().count, 3, 'a stale ack of id 1 removed nothing');
  });
});
