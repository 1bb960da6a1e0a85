import type { FalcoEvent } from '../event/falco-event.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import type { DeliveryQueue, GiveUp, GiveUpResult, QueueDepth, QueueEntry } from './queue.ts';

interface Slot extends QueueEntry {
  dueAt: number;
}

/** What a claim hands out: a copy of the slot, so that a later claim's token does not change it. */
function entryOf(slot: Slot): QueueEntry {
  const { id, claim, event, bytes, enqueuedAt, attempts, firstAttemptAt } = slot;
  return { id, claim, event, bytes, enqueuedAt, attempts, firstAttemptAt };
}

/**
 * The queue of a `durability: memory` destination: nothing on disk, so a crash loses what it holds
 * and entries it gives up on are dropped (counted) unless a fallback takes them. Same caps, retries,
 * leases and claim tokens as the durable queue: a settle made under a claim whose lease ran out (the
 * entry since claimed again) changes nothing, so it cannot unlease, hand over or drop an entry that
 * another claim is sending.
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
  /** The same slots by id. */
  private readonly slotsById = new Map<number, Slot>();
  /** Count and bytes of the slots a claim holds (being sent): those whose `claim` is nonzero. */
  private leasedCount = 0;
  private leasedBytes = 0;
  private nextId = 1;
  private lastClaim = 0;
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
      if (this.whenFull === 'drop_newest' || this.full(this.leasedCount, this.leasedBytes, bytes)) {
        this.onDrop('queue_full_newest', 1);
        return;
      }
      let dropped = 0;
      while (this.full(this.slots.length, this.bytes, bytes)) {
        const index = this.slots.findIndex((s) => s.claim === 0);
        const [removed] = this.slots.splice(index, 1);
        this.slotsById.delete(removed!.id);
        this.bytes -= removed!.bytes;
        dropped++;
      }
      this.onDrop('queue_full_oldest', dropped);
    }
    const slot: Slot = {
      id: this.nextId++,
      claim: 0,
      event,
      bytes,
      enqueuedAt,
      attempts: 0,
      firstAttemptAt: undefined,
      dueAt: now,
    };
    this.slots.push(slot);
    this.slotsById.set(slot.id, slot);
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
    const claim = ++this.lastClaim;
    let size = 0;
    for (const slot of this.slots) {
      if (out.length >= max) break;
      if (slot.dueAt > now) continue;
      if ((out.length > 0 || strictBytes) && maxBytes > 0 && size + slot.bytes > maxBytes) break;
      size += slot.bytes;
      slot.dueAt = now + lease;
      if (slot.claim === 0) {
        // (A slot already leased is one whose lease ran out, claimed again.)
        this.leasedCount++;
        this.leasedBytes += slot.bytes;
      }
      slot.claim = claim;
      out.push(entryOf(slot));
    }
    return out;
  }

  /**
   * The slots of `entries` still held under the claim that handed them out: not settled since, and
   * not claimed again after their lease ran out. Such a slot is leased, its claim nonzero.
   */
  private held(entries: readonly QueueEntry[]): Map<QueueEntry, Slot> {
    const held = new Map<QueueEntry, Slot>();
    for (const entry of entries) {
      const slot = this.slotsById.get(entry.id);
      if (slot && slot.claim !== 0 && slot.claim === entry.claim) held.set(entry, slot);
    }
    return held;
  }

  private unlease(slot: Slot): void {
    if (slot.claim === 0) return;
    slot.claim = 0;
    this.leasedCount--;
    this.leasedBytes -= slot.bytes;
  }

  /** Removes these slots; returns how many there were. */
  private remove(slots: Iterable<Slot>): number {
    const gone = new Set(slots);
    if (gone.size === 0) return 0;
    this.slots = this.slots.filter((s) => {
      if (!gone.has(s)) return true;
      this.slotsById.delete(s.id);
      this.bytes -= s.bytes;
      this.unlease(s);
      return false;
    });
    return gone.size;
  }

  ack(entries: readonly QueueEntry[]): void {
    this.remove(this.held(entries).values());
  }

  reschedule(entries: readonly QueueEntry[], dueAt: number, _error: string, now: number): void {
    for (const [entry, slot] of this.held(entries)) {
      slot.dueAt = dueAt;
      slot.attempts = entry.attempts;
      slot.firstAttemptAt = entry.firstAttemptAt ?? now;
      this.unlease(slot);
    }
  }

  giveUp(items: readonly GiveUp[], fallback: DeliveryQueue | undefined, now: number): GiveUpResult {
    // Removed only once its fallback took it: should a hand-over fail (a durable fallback that
    // cannot write), the rest stay here leased and come back when their lease expires.
    const handed: Slot[] = [];
    try {
      for (const slot of this.held(items.map((i) => i.entry)).values()) {
        fallback?.adopt(slot.event, slot.enqueuedAt, now);
        handed.push(slot);
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
    for (const slot of this.held(entries).values()) {
      slot.dueAt = 0;
      this.unlease(slot);
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
