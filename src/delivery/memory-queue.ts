import TinyQueue from 'tinyqueue';
import type { FalcoEvent } from '../event/falco-event.ts';
import { stringifyJson } from '../event/json.ts';
import type {
  DeliveryQueue,
  GiveUp,
  GiveUpResult,
  OnQueueFull,
  QueueDepth,
  QueueEntry,
  QueueFullReason,
} from './queue.ts';

interface Slot extends QueueEntry {
  dueAt: number;
  /** Bumped whenever `dueAt` changes: a heap node naming an older version is stale. */
  version: number;
}

/** A slot's place in the due-time heap, as of one version of the slot. */
interface DueNode {
  dueAt: number;
  id: number;
  version: number;
}

/** Claim order: due time, then id, as the durable queue's `ORDER BY due_at, id`. */
const byDueThenId = (a: DueNode, b: DueNode) => a.dueAt - b.dueAt || a.id - b.id;

/** What a claim hands out: a copy of the slot, so that a later claim's token does not change it. */
function entryOf(slot: Slot): QueueEntry {
  const { id, claim, event, bytes, enqueuedAt, attempts, firstAttemptAt } = slot;
  return { id, claim, event, bytes, enqueuedAt, attempts, firstAttemptAt };
}

/**
 * The queue of a `durability: memory` destination: nothing on disk, so a crash loses what it holds
 * and entries it gives up on are dropped (counted) unless a fallback takes them. Same caps, retries,
 * leases, claim tokens and claim order as the durable queue: a settle made under a claim whose lease
 * ran out (the entry since claimed again) changes nothing, so it cannot unlease, hand over or drop an
 * entry that another claim is sending.
 *
 * Every operation stays cheap with a full queue (100,000 entries by default) behind a destination that
 * was down: slots sit in a Map in enqueue order (settles and drops by id, oldest first), and a binary
 * heap orders them by due time for claims. A change of due time adds a heap node rather than moving
 * one; nodes left stale are skipped when they surface, and the heap is rebuilt when they pile up.
 */
export class MemoryQueue implements DeliveryQueue {
  readonly destination: string;
  /** A claim costs no write: nothing to save by claiming ahead. */
  readonly claimsAhead = false;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly whenFull: 'drop_oldest' | 'drop_newest';
  private readonly onDrop: OnQueueFull;
  /** Where the caps send what they turn away, when the destination has a fallback (see setOverflow). */
  private overflow: { queue: DeliveryQueue; handed: OnQueueFull } | undefined;
  /** By id, in enqueue order (ids grow). */
  private readonly slots = new Map<number, Slot>();
  private due = new TinyQueue<DueNode>([], byDueThenId);
  /** Count and bytes of the slots a claim holds (being sent): those whose `claim` is nonzero. */
  private leasedCount = 0;
  private leasedBytes = 0;
  private nextId = 1;
  private lastClaim = 0;
  private bytes = 0;

  constructor(
    destination: string,
    caps: { maxEvents: number; maxBytes: number; whenFull: 'drop_oldest' | 'drop_newest' },
    onDrop: OnQueueFull,
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
    // Measured as the journal measures it (journal.ts), so that both durabilities fill their caps alike.
    const bytes = Buffer.byteLength(stringifyJson(event));
    if (this.full(this.slots.size, this.bytes, bytes)) {
      // drop_oldest drops only what is not being sent; when the entries in flight alone leave no room
      // (or the event is larger than the byte cap), the new one goes and the queued ones stay.
      if (this.whenFull === 'drop_newest' || this.full(this.leasedCount, this.leasedBytes, bytes)) {
        this.turnAway('queue_full_newest', [{ event, enqueuedAt }], now);
        return;
      }
      const dropped: Slot[] = [];
      for (const slot of this.slots.values()) {
        if (!this.full(this.slots.size, this.bytes, bytes)) break;
        if (slot.claim !== 0) continue; // being sent
        this.slots.delete(slot.id); // (deleting the current entry does not disturb a Map's iteration)
        this.bytes -= slot.bytes;
        dropped.push(slot);
      }
      this.turnAway('queue_full_oldest', dropped, now);
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
      version: 0,
    };
    this.slots.set(slot.id, slot);
    this.bytes += bytes;
    this.schedule(slot, now);
  }

  /** Entries the caps turned away: to the fallback when there is one, else dropped; counted either way. */
  private turnAway(
    reason: QueueFullReason,
    entries: readonly { event: FalcoEvent; enqueuedAt: number }[],
    now: number,
  ): void {
    if (entries.length === 0) return;
    let handed = 0;
    if (this.overflow !== undefined) {
      try {
        for (const { event, enqueuedAt } of entries) {
          this.overflow.queue.adopt(event, enqueuedAt, now);
          handed++;
        }
      } catch {
        // A durable fallback that cannot write (its journal refuses): what it did not take is dropped,
        // counted below; the journal reports its own failure.
      }
      if (handed > 0) this.overflow.handed(reason, handed);
    }
    if (handed < entries.length) this.onDrop(reason, entries.length - handed);
  }

  setOverflow(fallback: DeliveryQueue, handed: OnQueueFull): void {
    this.overflow = { queue: fallback, handed };
  }

  /** True when one more entry of `bytes` would exceed a cap, with `count` entries of `total` bytes queued. */
  private full(count: number, total: number, bytes: number): boolean {
    return (
      (this.maxEvents > 0 && count + 1 > this.maxEvents) ||
      (this.maxBytes > 0 && total + bytes > this.maxBytes)
    );
  }

  /** Sets a slot's due time and files it in the heap under it. */
  private schedule(slot: Slot, dueAt: number): void {
    slot.dueAt = dueAt;
    slot.version++;
    this.due.push({ dueAt, id: slot.id, version: slot.version });
    // Each settle and claim leaves a stale node behind (removed at once would cost a search): rebuild
    // from the live slots once the stale ones outnumber them, so the heap stays O(queued).
    if (this.due.length > 2 * this.slots.size + 1024) {
      const live: DueNode[] = [];
      for (const s of this.slots.values()) live.push({ dueAt: s.dueAt, id: s.id, version: s.version });
      this.due = new TinyQueue(live, byDueThenId);
    }
  }

  /** The heap's first live node and its slot, dropping stale nodes on the way. */
  private firstDue(): Slot | undefined {
    for (;;) {
      const node = this.due.peek();
      if (node === undefined) return undefined;
      const slot = this.slots.get(node.id);
      if (slot !== undefined && slot.version === node.version) return slot;
      this.due.pop();
    }
  }

  claim(now: number, max: number, maxBytes: number, lease: number, strictBytes = false): QueueEntry[] {
    const claimed: Slot[] = [];
    const claim = ++this.lastClaim;
    let size = 0;
    while (claimed.length < max) {
      const slot = this.firstDue();
      if (slot === undefined || slot.dueAt > now) break;
      if ((claimed.length > 0 || strictBytes) && maxBytes > 0 && size + slot.bytes > maxBytes) break;
      this.due.pop();
      size += slot.bytes;
      if (slot.claim === 0) {
        // (A slot already leased is one whose lease ran out, claimed again.)
        this.leasedCount++;
        this.leasedBytes += slot.bytes;
      }
      slot.claim = claim;
      claimed.push(slot);
    }
    // Due again at their lease expiry, filed once the loop is done so that none comes up twice.
    for (const slot of claimed) this.schedule(slot, now + lease);
    return claimed.map(entryOf);
  }

  /**
   * The slots of `entries` still held under the claim that handed them out: not settled since, and
   * not claimed again after their lease ran out. Such a slot is leased, its claim nonzero.
   */
  private held(entries: readonly QueueEntry[]): Map<QueueEntry, Slot> {
    const held = new Map<QueueEntry, Slot>();
    for (const entry of entries) {
      const slot = this.slots.get(entry.id);
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

  /** Removes these slots (their heap nodes go stale); returns how many there were. */
  private remove(slots: Iterable<Slot>): number {
    let removed = 0;
    for (const slot of slots) {
      if (!this.slots.delete(slot.id)) continue;
      this.bytes -= slot.bytes;
      this.unlease(slot);
      removed++;
    }
    return removed;
  }

  ack(entries: readonly QueueEntry[]): void {
    this.remove(this.held(entries).values());
  }

  reschedule(entries: readonly QueueEntry[], dueAt: number, _error: string, now: number): void {
    for (const [entry, slot] of this.held(entries)) {
      slot.attempts = entry.attempts;
      slot.firstAttemptAt = entry.firstAttemptAt ?? now;
      this.unlease(slot);
      this.schedule(slot, dueAt);
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

  clockStepped(step: number, before: number): void {
    const now = before + step;
    for (const slot of this.slots.values()) {
      if (step < 0 && slot.dueAt > now) this.schedule(slot, Math.max(slot.dueAt + step, now));
      else if (step > 0 && slot.dueAt > before && slot.claim !== 0) this.schedule(slot, slot.dueAt + step);
    }
  }

  release(entries: readonly QueueEntry[]): void {
    for (const slot of this.held(entries).values()) {
      this.unlease(slot);
      this.schedule(slot, 0);
    }
  }

  /** Empties the queue (shutdown): every event left, leased or not, oldest first. */
  takeAll(): { event: FalcoEvent; enqueuedAt: number }[] {
    const left = [...this.slots.values()].map(({ event, enqueuedAt }) => ({ event, enqueuedAt }));
    this.remove([...this.slots.values()]);
    return left;
  }

  nextDueAt(): number | undefined {
    return this.firstDue()?.dueAt;
  }

  depth(): QueueDepth {
    const oldest = this.slots.values().next();
    return {
      count: this.slots.size,
      bytes: this.bytes,
      oldestEnqueuedAt: oldest.done ? undefined : oldest.value.enqueuedAt,
    };
  }

  deadLetterCount(): number {
    return 0;
  }
}
