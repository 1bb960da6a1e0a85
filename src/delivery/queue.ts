import type { FalcoEvent } from '../event/falco-event.ts';

/** One queued delivery of one event to one destination, as a worker holds it. */
export interface QueueEntry {
  id: number;
  event: FalcoEvent;
  /** Serialized size, counted against the queue's byte cap. */
  bytes: number;
  /** When ingest committed it (ms), for latency and age. */
  enqueuedAt: number;
  attempts: number;
  /** First delivery attempt (ms), for the retry budget; undefined before any attempt. */
  firstAttemptAt: number | undefined;
}

export interface QueueDepth {
  count: number;
  bytes: number;
  /** Enqueue time of the oldest entry, undefined when empty. */
  oldestEnqueuedAt: number | undefined;
}

/** Where an entry goes when it will not be retried. */
export interface GiveUp {
  entry: QueueEntry;
  reason: string;
  error: string;
}

/**
 * A destination's queue. The SQLite journal implements it durably (src/delivery/journal.ts); the
 * memory queue implements it for `durability: memory` destinations.
 */
export interface DeliveryQueue {
  readonly destination: string;
  /** Leases up to `max` due entries (and at most `maxBytes`, but always at least one). */
  claim(now: number, max: number, maxBytes: number, lease: number): QueueEntry[];
  /** Delivered: remove. */
  ack(entries: readonly QueueEntry[]): void;
  /** Failed, to be tried again at `dueAt`. */
  reschedule(entries: readonly QueueEntry[], dueAt: number, error: string, now: number): void;
  /**
   * Failed for good: re-queued on `fallback` when given, else to dead letters (durable queues) or
   * dropped (memory queues). Returns how many went to dead letters.
   */
  giveUp(items: readonly GiveUp[], fallback: DeliveryQueue | undefined, now: number): number;
  /** Takes an event another queue gave up on (this queue is its fallback). */
  adopt(event: FalcoEvent, now: number): void;
  /** Returns leased entries unsent (shutdown), due at once. */
  release(entries: readonly QueueEntry[]): void;
  /** Earliest due time of any entry (leased ones count at their lease expiry). */
  nextDueAt(): number | undefined;
  depth(): QueueDepth;
  deadLetterCount(): number;
}
