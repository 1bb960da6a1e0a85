import { MemoryQueue } from '../src/delivery/memory-queue.ts';
import { parseFalcoEvent } from '../src/event/falco-event.ts';
import { generateEvents } from '../test/helpers/events.ts';

const OPERATIONS = 20_000;

/** µs per call of `op`, run `OPERATIONS` times. */
function perOperation(op: (i: number) => void): number {
  const started = performance.now();
  for (let i = 0; i < OPERATIONS; i++) op(i);
  return ((performance.now() - started) * 1000) / OPERATIONS;
}

/**
 * The queue of a `durability: memory` destination, in this process: the cost of a push at the cap
 * (`drop_oldest`) and of a claim plus ack of one entry, with `depth` entries queued. The baseline is
 * the same operations on a queue of 100: a ratio near 1 means the cost does not grow with the backlog
 * a destination that was down leaves (it grew linearly before 2026-11-29).
 */
function measure(depth: number, events: ReturnType<typeof parseFalcoEvent>[]) {
  const queue = new MemoryQueue(
    'bench',
    { maxEvents: depth, maxBytes: 0, whenFull: 'drop_oldest' },
    () => {},
  );
  for (let i = 0; i < depth; i++) queue.push(events[i % events.length]!, 0);
  const pushAtCap = perOperation((i) => queue.push(events[i % events.length]!, 0));
  const claimAck = perOperation(() => queue.ack(queue.claim(1, 1, 0, 60_000)));
  return { pushAtCap, claimAck, left: queue.depth().count };
}

export function memoryQueueBench(): void {
  const events = generateEvents(1000, { seed: 31 }).map((line) => parseFalcoEvent(line));
  measure(100, events); // warm-up
  const small = measure(100, events);
  const large = measure(100_000, events);
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  console.log(`\n## memory queue (durability: memory), ${OPERATIONS} operations each`);
  console.log(
    `push at the cap (drop_oldest): ${large.pushAtCap.toFixed(1)} µs with 100,000 queued, ${small.pushAtCap.toFixed(1)} µs with 100 (ratio ${ratio(large.pushAtCap, small.pushAtCap)})`,
  );
  console.log(
    `claim + ack of one entry: ${large.claimAck.toFixed(1)} µs with 100,000 queued, ${small.claimAck.toFixed(1)} µs with 100 (ratio ${ratio(large.claimAck, small.claimAck)}); ${large.left} left`,
  );
}
