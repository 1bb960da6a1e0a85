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
  /**
   * The claim (lease token) that holds the entry. Its settles apply only while that claim still
   * holds it: once the lease ran out and another claim took the entry, the old holder's ack,
   * reschedule, give-up or release changes nothing.
   */
  claim: number;
}

export interface QueueDepth {
  count: number;
  bytes: number;
  /** Enqueue time of the oldest entry, undefined when empty. */
  oldestEnqueuedAt: number | undefined;
}

/** What a give-up did: how many entries it took off the queue, and how many of those became dead letters. */
export interface GiveUpResult {
  settled: number;
  deadLetters: number;
}

/** Why a queue cap turned an entry away: the new one refused, or the oldest ones dropped for it. */
export type QueueFullReason = 'queue_full_newest' | 'queue_full_oldest';

/** Counts entries a queue cap dropped, or handed to the fallback (see DeliveryQueue.setOverflow). */
export type OnQueueFull = (reason: QueueFullReason, count: number) => void;

/** An entry that will not be retried, with the reason and error its dead letter records. */
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
  /**
   * True when claiming pays off in bulk (each claim is a disk write): workers of a destination that
   * sends one event at a time then claim several entries ahead (see DestinationWorkers).
   */
  readonly claimsAhead: boolean;
  /** Connects the destination's workers when they claim ahead (durable queues only). */
  setPrefetcher?(prefetcher: Prefetcher): void;
  /**
   * Leases up to `max` due entries, and at most `maxBytes` (0 = no limit) of them, though the first
   * one always, whatever its size, unless `strictBytes` (a claim that tops up a batch).
   */
  claim(now: number, max: number, maxBytes: number, lease: number, strictBytes?: boolean): QueueEntry[];
  /** Delivered: remove (a durable queue writes this a moment later, grouped; see Journal.settle). */
  ack(entries: readonly QueueEntry[]): void;
  /** Failed, to be tried again at `dueAt` (grouped like ack). */
  reschedule(entries: readonly QueueEntry[], dueAt: number, error: string, now: number): void;
  /**
   * Failed for good: re-queued on `fallback` when given, else to dead letters (durable queues) or
   * dropped (memory queues). Entries no longer held under their claim (claimed again after the
   * lease ran out) are left alone and not counted.
   */
  giveUp(items: readonly GiveUp[], fallback: DeliveryQueue | undefined, now: number): GiveUpResult;
  /**
   * Takes an event another queue gave up on (this queue is its fallback), due now. `enqueuedAt` is
   * its ingest time, kept so that latency and queue age count the time spent on the other queue.
   */
  adopt(event: FalcoEvent, enqueuedAt: number, now: number): void;
  /**
   * What the caps turn away (the newest refused, or the oldest dropped for it) goes to `fallback`
   * (this destination's) instead of being dropped; `handed` counts it, once it is there.
   */
  setOverflow(fallback: DeliveryQueue, handed: OnQueueFull): void;
  /**
   * The wall clock was stepped by `step` ms (negative: back) when it read `before` without the step:
   * shifts the due times to come by the step, so they stay as far from now as they were: after a
   * step back all of them (none later than now when it was already due before), after a step
   * forward only the leases not run out by then.
   */
  clockStepped(step: number, before: number): void;
  /** Returns leased entries unsent (shutdown), due at once. */
  release(entries: readonly QueueEntry[]): void;
  /** Earliest due time of any entry (leased ones count at their lease expiry). */
  nextDueAt(): number | undefined;
  depth(): QueueDepth;
  deadLetterCount(): number;
}

/**
 * The workers of a destination that claim ahead (see DestinationWorkers), as their durable queue
 * sees them. While they are caught up (everything due is claimed), an ingest commit inserts the new
 * entries already leased and hands them over, saving a claim; a full `drop_oldest` queue takes back
 * what they hold unsent, to drop it like any unclaimed entry.
 */
export interface Prefetcher {
  /** Lease (ms) of the entries handed over. */
  readonly lease: number;
  /** How many entries committed now it takes directly: 0 unless caught up and with room. */
  room(now: number): number;
  /** Entries handed over by a commit that succeeded, leased until `leaseUntil`. */
  accept(entries: QueueEntry[], leaseUntil: number): void;
  /** Entries became due that it was not handed: claim them before idling. */
  notify(): void;
  /** Empties what it holds claimed and not being sent (the caller releases those leases). */
  takeBack(): QueueEntry[];
}
