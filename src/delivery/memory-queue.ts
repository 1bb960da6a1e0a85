import type { FalcoEvent } from '../event/falco-event.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import type { DeliveryQueue, GiveUp, GiveUpResult, QueueDepth, QueueEntry } from './queue.ts';

interface Slot extends QueueEntry {
  dueAt: number;
}

/**
 * The queue of a `durability: memory` destination: nothing on disk, so a crash loses what it holds
 * and entries it gives up on are dropped (counted) unless a fallback takes them. Same caps, retries
 * and leases as the durable queue.
 */
export class MemoryQueue implements DeliveryQueue {
  readonly destination: string;
  /** A claim is a scan of an array: nothing to save by claiming ahead. */
  readonly claimsAhead = false;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly whenFull: 'drop_oldest' | 'drop_newest';
  private readonly onDrop: (reason: 'queue_full_newest' | 'queue_full_oldest', count: number) => void;
  /** In enqueue order; small enough in practice that linear scans are fine (capped by max_events). */
  private slots: Slot[] = [];
  private leased = new Set<number>();
  /** Bytes of the leased entries (being sent), kept with `leased`. */
  private leasedBytes = 0;
  private nextId = 1;
  private bytes = 0;

  constructor(
    destination: string,
    caps: { maxEvents: number; maxBytes: number; whenFull: 'drop_oldest' | 'drop_newest' },
    onDrop: (reason: 'queue_full_newest' | 'queue_full_oldest', count: number) => void,
  ) {
    this.destination = destination;
    this.maxEvents = caps.maxEvents;
    this.maxBytes = caps.maxBytes;
    this.whenFull = caps.whenFull;
    this.onDrop = onDrop;
  }

  /**
   * Adds an event due now, applying the caps (every drop counted). `enqueuedAt` is when it was
   * ingested: earlier than now for one handed over by the destination it fell back from.
   */
  push(event: FalcoEvent, now: number, enqueuedAt = now): void {
    const bytes = Buffer.byteLength(toSidekickJson(event));
    if (this.full(this.slots.length, this.bytes, bytes)) {
      // drop_oldest drops only what is not being sent; when the entries in flight alone leave no room
      // (or the event is larger than the byte cap), the new one goes and the queued ones stay.
      if (this.whenFull === 'drop_newest' || this.full(this.leased.size, this.leasedBytes, bytes)) {
        this.onDrop('queue_full_newest', 1);
        return;
      }
      let dropped = 0;
      while (this.full(this.slots.length, this.bytes, bytes)) {
        const index = this.slots.findIndex((s) => !this.leased.has(s.id));
        const [removed] = this.slots.splice(index, 1);
        this.bytes -= removed!.bytes;
        dropped++;
      }
      this.onDrop('queue_full_oldest', dropped);
    }
    this.slots.push({
      id: this.nextId++,
      // Ids are never reused here, and a late settle at worst sends an entry twice: no claim tokens.
      claim: 0,
      event,
      bytes,
      enqueuedAt,
      attempts: 0,
      firstAttemptAt: undefined,
      dueAt: now,
    });
    this.bytes += bytes;
  }

  /** True when one more entry of `bytes` would exceed a cap, with `count` entries of `total` bytes queued. */
  private full(count: number, total: number, bytes: number): boolean {
    return (
      (this.maxEvents > 0 && count + 1 > this.maxEvents) ||
      (this.maxBytes > 0 && total + bytes > this.maxBytes)
    );
  }

  claim(now: number, max: number, maxBytes: number, lease: number, strictBytes = false): QueueEntry[] {
    const out: QueueEntry[] = [];
    let size = 0;
    for (const slot of this.slots) {
      if (out.length >= max) break;
      if (slot.dueAt > now) continue;
      if ((out.length > 0 || strictBytes) && maxBytes > 0 && size + slot.bytes > maxBytes) break;
      size += slot.bytes;
      slot.dueAt = now + lease;
      this.lease(slot);
      out.push(slot);
    }
    return out;
  }

  private lease(entry: QueueEntry): void {
    if (this.leased.has(entry.id)) return; // a lease that expired, claimed again
    this.leased.add(entry.id);
    this.leasedBytes += entry.bytes;
  }

  private unlease(entry: QueueEntry): void {
    if (this.leased.delete(entry.id)) this.leasedBytes -= entry.bytes;
  }

  /** Removes the entries still queued; returns how many were. */
  private remove(entries: readonly QueueEntry[]): number {
    if (entries.length === 0) return 0;
    const ids = new Set(entries.map((e) => e.id));
    const before = this.slots.length;
    this.slots = this.slots.filter((s) => {
      if (!ids.has(s.id)) return true;
      this.bytes -= s.bytes;
      this.unlease(s);
      return false;
    });
    return before - this.slots.length;
  }

  ack(entries: readonly QueueEntry[]): void {
    this.remove(entries);
  }

  reschedule(entries: readonly QueueEntry[], dueAt: number, _error: string, now: number): void {
    for (const e of entries) {
      const slot = e as Slot;
      slot.dueAt = dueAt;
      slot.firstAttemptAt ??= now;
      this.unlease(slot);
    }
  }

  giveUp(items: readonly GiveUp[], fallback: DeliveryQueue | undefined, now: number): GiveUpResult {
    // Removed only once its fallback took it: should a hand-over fail (a durable fallback that
    // cannot write), the rest stay here leased and come back when their lease expires.
    const handed: QueueEntry[] = [];
    const queued = new Set(this.slots.map((s) => s.id));
    try {
      for (const { entry } of items) {
        if (!queued.has(entry.id)) continue; // settled by a later claim after its lease ran out
        fallback?.adopt(entry.event, entry.enqueuedAt, now);
        handed.push(entry);
      }
    } catch (err) {
      this.remove(handed);
      throw err;
    }
    return { settled: this.remove(handed), deadLetters: 0 };
  }

  adopt(event: FalcoEvent, enqueuedAt: number, now: number): void {
    this.push(event, now, enqueuedAt);
  }

  release(entries: readonly QueueEntry[]): void {
    for (const e of entries) {
      (e as Slot).dueAt = 0;
      this.unlease(e);
    }
  }

  nextDueAt(): number | undefined {
    let next: number | undefined;
    for (const s of this.slots) if (next === undefined || s.dueAt < next) next = s.dueAt;
    return next;
  }

  depth(): QueueDepth {
    return { count: this.slots.length, bytes: this.bytes, oldestEnqueuedAt: this.slots[0]?.enqueuedAt };
  }

  deadLetterCount(): number {
    return 0;
  }
}
