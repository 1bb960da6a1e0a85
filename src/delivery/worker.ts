import type { Logger } from 'pino';
import type { DestinationConfig } from '../config/types.ts';
import { SEND_DEADLINE_MARGIN_MS, type Destination } from '../destinations/types.ts';
import { backoffDelay, budgetExhausted, pastElapsedBudget } from './backoff.ts';
import { classify, PartialRejectionError, type Classification } from './errors.ts';
import type { DeliveryQueue, GiveUp, Prefetcher, QueueEntry } from './queue.ts';
import { redactSecrets } from '../util/logger.ts';
import { LogThrottle } from '../util/log-throttle.ts';
import { timerDelay } from '../util/timer.ts';

/** What a destination's workers report, for metrics and health. */
export interface DeliveryObserver {
  success(entries: readonly QueueEntry[], now: number): void;
  retry(entries: readonly QueueEntry[], failure: Classification): void;
  /** `reason` is the dead letters' (retries_exhausted, permanent_STATUS), as `eyrie dlq list` shows it. */
  gaveUp(count: number, deadLetters: number, toFallback: boolean, reason: string): void;
  /** A send (one request, whatever the batch size) started (+1) or ended (-1). */
  inFlight(delta: number): void;
}

/** Resolves when notified or after `ms`, whichever first. */
class Wakeup {
  private waiters: (() => void)[] = [];
  notify(): void {
    // Iterate over a copy: each waiter removes itself from this array when called.
    const waiters = [...this.waiters];
    this.waiters = [];
    for (const w of waiters) w();
  }
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timerDelay(ms));
      const waiters = this.waiters;
      function done() {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      this.waiters.push(done);
    });
  }
}

interface SendInFlight {
  deadline: number;
  abandon: (err: Error) => void;
}

/** Longest sleep with nothing due: entries the dlq CLI replays are picked up within this. */
const IDLE_POLL_MS = 1000;
/** How often a shutdown looks whether a memory queue has drained. */
const DRAIN_POLL_MS = 20;

/**
 * A change of the wall clock against the monotonic one, between two claims, past which the wall
 * clock was stepped (NTP, a corrected clock), not slewed (at most 0.5 ms per second).
 */
const CLOCK_STEP_MS = 1000;

/** How a receiver's refusal of some events of a batch it otherwise took is counted: permanent. */
const REFUSED: Classification = { retryable: false, reason: 'rejected', message: 'refused by the receiver' };

/**
 * At most one "delivery given up" line per reason this often. A permanent failure is not paced by a
 * backoff: a receiver that refuses every event (an expired token's 401, a wrong path's 404) would
 * otherwise log a line per event, hundreds a second. Dead letters and metrics still count each one.
 */
const GIVE_UP_LOG_INTERVAL_MS = 60_000;

/**
 * Entries claimed ahead per worker for a destination that sends one event per request, when claims
 * cost a disk write: one claim transaction then serves this many sends per worker.
 */
const PREFETCH_PER_WORKER = 4;

/**
 * The workers of one destination: claim due entries with a lease, send, then ack, reschedule with
 * backoff, or give up (dead letters / fallback). `queue.concurrency` workers run at once; a slow or
 * dead destination only ever occupies its own workers.
 *
 * A destination that sends one event at a time over a durable queue claims ahead: one claim leases
 * up to `concurrency × PREFETCH_PER_WORKER` due entries into a local buffer the workers take from, so
 * a claim transaction is shared by many sends (acks and reschedules are grouped by the journal too).
 * Buffered entries are leased like any claimed entry; one whose lease could run out before its send
 * ends is handed back rather than sent. A full `drop_oldest` queue can take them back, and shutdown
 * releases them at once.
 */
export class DestinationWorkers implements Prefetcher {
  readonly config: DestinationConfig;
  readonly queue: DeliveryQueue;
  private readonly destination: Destination;
  private readonly observer: DeliveryObserver;
  private readonly logger: Logger;
  private readonly wakeup = new Wakeup();
  private fallback: DeliveryQueue | undefined;
  /** Wakes the fallback destination's workers when entries are handed to it. */
  private wakeFallback: (() => void) | undefined;
  private loops: Promise<void>[] = [];
  /** Per worker: when its pause after a failed send ends (0 = not pausing). */
  private readonly resumeAt: number[] = [];
  private stopping = false;
  private readonly held = new Set<QueueEntry>();
  /** Sends in flight, oldest first, and the timer that abandons those past their deadline. */
  private readonly sends = new Set<SendInFlight>();
  private watchdog: NodeJS.Timeout | undefined;
  /** Entries claimed per refill of `prefetched`; 0 when each worker claims for itself. */
  private readonly prefetch: number;
  readonly lease: number;
  /** Claimed ahead or handed over (and in `held`), not being sent yet, in queue order. */
  private prefetched: QueueEntry[] = [];
  /** Earliest lease expiry of the entries in `prefetched`. */
  private prefetchedUntil = 0;
  /** With nothing prefetched, no claim before this (nothing was due), unless notified. */
  private idleUntil = 0;
  /** Wall time minus monotonic time when last looked at: a change is a step of the wall clock. */
  private clockOffset = Date.now() - performance.now();
  /** Set once shutdown released what was held: late results must not touch the closed queue. */
  private abandoned = false;
  /** Consecutive failed sends, for health. */
  consecutiveFailures = 0;
  /**
   * Sends that succeeded after failures: the destination is back, and the workers still pausing
   * after their own failed probes (up to `max_interval` plus jitter) resume with it.
   */
  private recoveries = 0;
  /** When the current run of failed sends began, for the line that says it ended. */
  private firstFailureAt: number | undefined;
  private readonly resumedLog = new LogThrottle(GIVE_UP_LOG_INTERVAL_MS);
  lastError: string | undefined;
  lastErrorAt: number | undefined;
  /**
   * Why the last claim could not read the queue (a damaged journal: "database disk image is
   * malformed"), until one succeeds: the entries there are stuck, for health to say.
   */
  readError: string | undefined;
  /** Replaced in the errors this keeps (health, retries, dead letters): an answer may echo them. */
  private readonly secrets: readonly string[];
  /** Per give-up reason: its log throttle and the events given up in the lines it held back. */
  private readonly giveUpLogs = new Map<string, { throttle: LogThrottle; events: number }>();

  constructor(
    config: DestinationConfig,
    queue: DeliveryQueue,
    destination: Destination,
    observer: DeliveryObserver,
    logger: Logger,
    secrets: readonly string[] = [],
  ) {
    this.config = config;
    this.secrets = secrets;
    this.queue = queue;
    this.destination = destination;
    this.observer = observer;
    this.logger = logger;
    this.lease = config.queue.lease;
    this.prefetch =
      queue.claimsAhead && queue.setPrefetcher && config.batch.max_events === 1
        ? config.queue.concurrency * PREFETCH_PER_WORKER
        : 0;
    if (this.prefetch > 0) queue.setPrefetcher!(this);
  }

  /**
   * True when the queue itself tells these workers about committed entries (hands them over or
   * notifies): the engine need not notify after each ingest commit.
   */
  get prefetching(): boolean {
    return this.prefetch > 0;
  }

  setFallback(queue: DeliveryQueue | undefined, wake?: () => void): void {
    this.fallback = queue;
    this.wakeFallback = wake;
  }

  start(): void {
    for (let i = 0; i < this.config.queue.concurrency; i++) {
      this.resumeAt.push(0);
      this.loops.push(this.loop(i));
    }
  }

  /** New entries were committed for this destination (or became due): claim before idling. */
  notify(): void {
    this.idleUntil = 0;
    this.wakeup.notify();
  }

  private async loop(worker: number): Promise<void> {
    while (!this.stopping) {
      let batch: QueueEntry[];
      try {
        batch = this.prefetch > 0 ? await this.next() : await this.collect();
        this.readError = undefined;
      } catch (err) {
        this.readError = `cannot read the queue: ${(err as Error).message}`;
        this.logger.error({ err }, 'cannot read the queue');
        await this.wakeup.wait(IDLE_POLL_MS);
        continue;
      }
      if (batch.length === 0) continue;
      let pause: number;
      try {
        pause = await this.deliver(batch);
      } catch (err) {
        // The outcome could not be recorded (a give-up the journal cannot write): the entries are
        // still leased, and come back when their lease expires. This worker carries on.
        this.logger.error(
          { err, events: batch.length },
          'cannot record the outcome of a send; these entries come back when their lease expires',
        );
        pause = IDLE_POLL_MS;
      }
      // A failing destination is probed once per backoff, not once per queued entry.
      // New events wake an idle worker, not a pausing one: keep sleeping until the pause is over.
      // Timed on the monotonic clock: a wall clock stepped back must not stretch the pause.
      // Another worker's success ends the pause: the backlog is drained by every worker at once.
      this.resumeAt[worker] = Date.now() + pause;
      const resumeAt = performance.now() + pause;
      const recoveries = this.recoveries;
      while (!this.stopping && this.recoveries === recoveries && performance.now() < resumeAt)
        await this.wakeup.wait(resumeAt - performance.now());
      this.resumeAt[worker] = 0;
    }
  }

  /** One entry from those claimed ahead (claiming more when none is left), or none after a wait. */
  private async next(): Promise<QueueEntry[]> {
    const entry = this.takePrefetched();
    if (entry !== undefined) return [entry];
    const wait = Math.min(IDLE_POLL_MS, this.idleUntil - Date.now());
    if (wait > 0 && !this.stopping) await this.wakeup.wait(wait);
    return [];
  }

  private takePrefetched(): QueueEntry | undefined {
    if (this.stopping) return undefined;
    const now = Date.now();
    this.checkClock(now);
    if (this.prefetched.length > 0 && this.prefetchedUntil - now <= this.sendLimit()) {
      // Claimed long ago (a slow destination, a long backoff pause): a send starting now could outlive
      // the lease and the entry be claimed and sent a second time. Hand them back and claim afresh.
      this.queue.release(this.takeBack());
    }
    if (this.prefetched.length === 0 && now >= this.idleUntil) {
      const claimed = this.queue.claim(now, this.prefetch, 0, this.lease);
      for (const e of claimed) this.held.add(e);
      this.prefetched = claimed;
      this.prefetchedUntil = now + this.lease;
      if (claimed.length < this.prefetch) {
        // Everything due is claimed: no claim before the next due time, unless notified.
        const next = this.queue.nextDueAt();
        this.idleUntil = now + (next === undefined ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, next - now));
      }
    }
    return this.prefetched.shift();
  }

  /**
   * Entries an ingest commit may hand over directly: none unless caught up (the last claim took
   * everything due, and nothing has come due since), so that older due entries go first.
   */
  room(now: number): number {
    if (this.stopping || now >= this.idleUntil) return 0;
    return Math.max(0, this.prefetch - this.prefetched.length);
  }

  accept(entries: QueueEntry[], leaseUntil: number): void {
    if (entries.length === 0) return;
    this.prefetchedUntil =
      this.prefetched.length > 0 ? Math.min(this.prefetchedUntil, leaseUntil) : leaseUntil;
    for (const e of entries) {
      this.held.add(e);
      this.prefetched.push(e);
    }
    this.wakeup.notify();
  }

  /** Empties the prefetch buffer: the entries are no longer held by this destination's workers. */
  takeBack(): QueueEntry[] {
    const back = this.prefetched;
    this.prefetched = [];
    for (const e of back) this.held.delete(e);
    this.idleUntil = 0;
    return back;
  }

  /**
   * Notices a step of the wall clock since the last look, and keeps the queue's due times (wall
   * times, stored) as far from now as they were: after a step back, retries are not held back by
   * the step (nor leases kept by it); after a step forward, leases of entries being sent do not
   * run out at once (the entries would be sent again). Retries are not pushed back by a step
   * forward: that may be time that really passed (a VM paused), and they come due sooner.
   */
  private checkClock(now: number): void {
    const offset = now - performance.now();
    const step = offset - this.clockOffset;
    if (Math.abs(step) < CLOCK_STEP_MS) {
      this.clockOffset = offset; // slewed: follow it
      return;
    }
    // What the clock would read now without the step: due times past it were in the future.
    const unstepped = now - step;
    // Noted only once the queue followed: should its write fail, the next look tries again.
    this.queue.clockStepped(step, unstepped);
    this.clockOffset = offset;
    this.logger.info({ stepMs: Math.round(step) }, 'the wall clock was stepped; queue due times follow it');
    if (this.prefetchedUntil > unstepped) this.prefetchedUntil += step;
    this.idleUntil = 0;
  }

  /** Longest a send may take (ms): request.timeout plus the margin the lease is checked against. */
  private sendLimit(): number {
    return this.config.request.timeout + SEND_DEADLINE_MARGIN_MS;
  }

  /**
   * Claims a batch: what is due now, waiting up to `batch.timeout` for it to fill. The lease covers
   * that wait as well as the send: a batch that waited its full timeout must not see its first
   * entries' lease run out (and another worker send them too) while it is being sent.
   */
  private async collect(): Promise<QueueEntry[]> {
    const { batch: policy, queue: queueConfig } = this.config;
    const lease = queueConfig.lease + policy.timeout;
    const now = Date.now();
    this.checkClock(now);
    const batch = this.queue.claim(now, policy.max_events, policy.max_bytes, lease);
    if (batch.length === 0) {
      const next = this.queue.nextDueAt();
      const wait = next === undefined ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, next - now);
      if (wait > 0 && !this.stopping) await this.wakeup.wait(wait);
      return batch;
    }
    for (const e of batch) this.held.add(e);
    let bytes = batch.reduce((n, e) => n + e.bytes, 0);
    // When to send at the latest, on the monotonic clock (a wall clock stepped back must not hold
    // the batch): batch.timeout after its first entry was queued, never more from now.
    const sendBy = performance.now() + Math.min(policy.timeout, batch[0]!.enqueuedAt + policy.timeout - now);
    while (
      !this.stopping &&
      batch.length < policy.max_events &&
      policy.timeout > 0 &&
      (policy.max_bytes === 0 || bytes < policy.max_bytes)
    ) {
      if (policy.max_bytes > 0) {
        // An entry is due that the last claim left (not for want of count): it did not fit in the
        // bytes left, so the batch is as full as it gets.
        const next = this.queue.nextDueAt();
        if (next !== undefined && next <= Date.now()) break;
      }
      const remaining = sendBy - performance.now();
      if (remaining <= 0) break;
      await this.wakeup.wait(remaining);
      let more: QueueEntry[];
      try {
        // Strict: topping up must not take the batch past max_bytes (a 413 would dead-letter it all).
        more = this.queue.claim(
          Date.now(),
          policy.max_events - batch.length,
          policy.max_bytes > 0 ? policy.max_bytes - bytes : 0,
          lease,
          true,
        );
      } catch (err) {
        this.logger.error({ err }, 'cannot read the queue; sending the batch as it is');
        break;
      }
      for (const e of more) {
        this.held.add(e);
        bytes += e.bytes;
      }
      batch.push(...more);
    }
    return batch;
  }

  /** Sends one batch and settles its entries; returns how long this worker should pause (ms). */
  private async deliver(batch: QueueEntry[]): Promise<number> {
    const now = Date.now();
    for (const e of batch) {
      e.attempts++;
      e.firstAttemptAt ??= now;
    }
    this.observer.inFlight(1);
    let failure: unknown;
    try {
      await this.sendWithDeadline(batch);
    } catch (err) {
      failure = err;
    } finally {
      this.observer.inFlight(-1);
      for (const e of batch) this.held.delete(e);
    }
    if (this.abandoned) return 0;
    const done = Date.now();
    if (failure === undefined || failure instanceof PartialRejectionError) {
      const refused = failure === undefined ? [] : this.refusedEntries(batch, failure);
      const notSent = failure === undefined ? [] : this.failedEntries(batch, failure, refused);
      const notDelivered = new Set([...refused.map((r) => r.entry), ...notSent.flatMap((f) => f.entries)]);
      const delivered = notDelivered.size === 0 ? batch : batch.filter((e) => !notDelivered.has(e));
      if (delivered.length > 0) {
        this.queue.ack(delivered);
        this.observer.success(delivered, done);
      }
      if (notSent.length === 0) {
        if (this.consecutiveFailures > 0) {
          // The outage logged a warning per failed probe; say when it ended. At most once a minute:
          // a flaky receiver (every other send failing) would log it with each success.
          const suppressed = this.resumedLog.take();
          if (suppressed !== undefined)
            this.logger.info(
              {
                failedSends: this.consecutiveFailures,
                since: new Date(this.firstFailureAt ?? done).toISOString(),
                suppressed,
              },
              'delivery resumed (logged once a minute at most; suppressed = resumptions since the last line)',
            );
          this.recoveries++;
          this.wakeup.notify();
        }
        this.firstFailureAt = undefined;
        this.consecutiveFailures = 0;
      }
      if (refused.length > 0) this.giveUp(refused, done);
      let pause = 0;
      for (const { entries, error } of notSent) pause = Math.max(pause, this.failed(entries, error, done));
      return pause;
    }
    return this.failed(batch, failure, done);
  }

  /**
   * Entries that were not delivered for one reason: retried with backoff, or given up when the error
   * is permanent or their budget is spent. Returns how long this worker should pause (ms).
   */
  private failed(batch: QueueEntry[], failure: unknown, done: number): number {
    const classification = classify(failure, this.config.retry, this.secrets);
    if (this.consecutiveFailures === 0) this.firstFailureAt = done;
    this.consecutiveFailures++;
    this.lastError = classification.message;
    this.lastErrorAt = done;
    const retry: QueueEntry[] = [];
    const giveUp: GiveUp[] = [];
    const retryAfter = classification.retryAfterMs;
    const delay = backoffDelay(this.config.retry, batch[0]!.attempts, retryAfter);
    for (const e of batch) {
      const first = e.firstAttemptAt ?? done;
      if (
        !classification.retryable ||
        budgetExhausted(this.config.retry, e.attempts, first, done) ||
        // A server asking to wait past the budget: give up now rather than hold the entry that long.
        // (Its own wait, not `delay`: a Retry-After of 0 asks for less than the backoff, and must not
        // end the retries sooner than no header would.)
        (retryAfter !== undefined && pastElapsedBudget(this.config.retry, first, done + retryAfter))
      ) {
        giveUp.push({
          entry: e,
          reason: classification.retryable ? 'retries_exhausted' : `permanent_${classification.reason}`,
          error: classification.message,
        });
      } else {
        retry.push(e);
      }
    }
    // Retry-After only holds the worker back while it has entries to retry.
    const pause = classification.retryable
      ? backoffDelay(this.config.retry, this.consecutiveFailures, retry.length > 0 ? retryAfter : undefined)
      : 0;
    if (retry.length > 0) {
      this.queue.reschedule(retry, done + delay, classification.message, done);
      // Claim them again when due, even if the queue looked idle until later.
      this.idleUntil = Math.min(this.idleUntil, done + delay);
      this.observer.retry(retry, classification);
      this.logger.warn(
        {
          events: retry.length,
          attempt: retry[0]!.attempts,
          retryInMs: delay,
          reason: classification.reason,
          error: classification.message,
        },
        'delivery failed, will retry',
      );
    }
    if (giveUp.length > 0) this.giveUp(giveUp, done);
    return pause;
  }

  /**
   * The groups of entries of a batch taken in part that were not delivered, each with its error; an
   * entry refused for good, or named twice, counts once, where it came first.
   */
  private failedEntries(
    batch: QueueEntry[],
    partial: PartialRejectionError,
    refused: readonly GiveUp[],
  ): { entries: QueueEntry[]; error: unknown }[] {
    const taken = new Set(refused.map((r) => r.entry));
    const groups: { entries: QueueEntry[]; error: unknown }[] = [];
    for (const { indices, error } of partial.failed) {
      const entries: QueueEntry[] = [];
      for (const index of indices) {
        const entry = batch[index];
        if (entry === undefined || taken.has(entry)) continue;
        taken.add(entry);
        entries.push(entry);
      }
      if (entries.length > 0) groups.push({ entries, error });
    }
    return groups;
  }

  /** Entries of a batch the receiver took in part that it refused, with its reasons. */
  private refusedEntries(batch: QueueEntry[], refusal: PartialRejectionError): GiveUp[] {
    const refused: GiveUp[] = [];
    const seen = new Set<number>();
    for (const { index, message } of refusal.rejected) {
      const entry = batch[index];
      if (entry === undefined || seen.has(index)) continue;
      seen.add(index);
      refused.push({
        entry,
        reason: `permanent_${REFUSED.reason}`,
        error: redactSecrets(message, this.secrets),
      });
    }
    return refused;
  }

  /** Gives up entries that all failed the same way (one reason). */
  private giveUp(giveUp: GiveUp[], done: number): void {
    const { settled, deadLetters } = this.queue.giveUp(giveUp, this.fallback, done);
    if (settled < giveUp.length) {
      // Their lease ran out during the send (a clock step, a stalled process) and another claim
      // holds them now: that claim settles them, so they are not counted here.
      this.logger.warn(
        { events: giveUp.length - settled },
        'entries to give up were claimed again after their lease ran out; left to that claim',
      );
    }
    if (settled === 0) return;
    this.observer.gaveUp(settled, deadLetters, this.fallback !== undefined, giveUp[0]!.reason);
    if (this.fallback) this.wakeFallback?.();
    const reason = giveUp[0]!.reason;
    let log = this.giveUpLogs.get(reason);
    if (log === undefined) {
      log = { throttle: new LogThrottle(GIVE_UP_LOG_INTERVAL_MS), events: 0 };
      this.giveUpLogs.set(reason, log);
    }
    const suppressed = log.throttle.take();
    if (suppressed === undefined) {
      log.events += settled;
      return;
    }
    const suppressedEvents = log.events;
    log.events = 0;
    this.logger.error(
      {
        events: settled,
        reason,
        error: giveUp[0]!.error,
        fallback: this.config.fallback,
        // Give-ups for this reason since the last line, not logged (one line a minute at most).
        suppressed,
        suppressedEvents,
      },
      this.fallback
        ? 'delivery given up, handed to the fallback destination'
        : deadLetters > 0
          ? `delivery given up, moved to dead letters (once the cause is fixed, eyrie dlq replay -d ${this.config.name} sends them again)`
          : 'delivery given up, dropped (durability: memory, and no fallback)',
    );
  }

  /**
   * Bounds every send, whatever the destination does (a send stuck past this is retried). One
   * watchdog timer per destination instead of a timer and a Promise.race per send (≈ 6 µs each):
   * every send has the same limit, so `sends` is in deadline order.
   */
  private sendWithDeadline(batch: QueueEntry[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Monotonic: a wall clock stepped forward must not abandon every send in flight (sent again).
      const send: SendInFlight = { deadline: performance.now() + this.sendLimit(), abandon: reject };
      this.sends.add(send);
      this.watchSends();
      const done = () => {
        this.sends.delete(send);
        resolve();
      };
      const failed = (err: unknown) => {
        this.sends.delete(send);
        reject(err instanceof Error ? err : new Error(String(err)));
      };
      try {
        this.destination.send(batch.map((e) => e.event)).then(done, failed);
      } catch (err) {
        failed(err);
      }
    });
  }

  /** Arms the watchdog for the oldest send in flight (none armed when nothing is in flight). */
  private watchSends(): void {
    if (this.watchdog !== undefined) return;
    const oldest = this.sends.values().next().value;
    if (oldest === undefined) return;
    this.watchdog = setTimeout(
      () => {
        this.watchdog = undefined;
        const now = performance.now();
        for (const send of this.sends) {
          if (send.deadline > now) break;
          this.sends.delete(send);
          send.abandon(
            Object.assign(new Error(`send did not finish within ${this.sendLimit()} ms`), {
              code: 'ETIMEDOUT',
            }),
          );
        }
        this.watchSends();
      },
      timerDelay(oldest.deadline - performance.now()),
    );
    // It may outlive the sends it watches (it is not re-armed when one ends): never the reason to stay up.
    this.watchdog.unref();
  }

  /**
   * Stops claiming; waits for in-flight sends up to `deadline`, then returns the rest unsent. A memory
   * queue, gone once the process ends, is first sent on until it is empty, nothing in it can be sent
   * before the deadline (a backoff past it), or the deadline.
   */
  async stop(deadline: number): Promise<void> {
    if (this.config.durability === 'memory') await this.drain(deadline);
    this.stopping = true;
    // Claimed ahead, not being sent: due again at once (for the next start).
    const unsent = this.takeBack();
    try {
      this.queue.release(unsent);
    } catch (err) {
      // Still leased: released when the journal is next opened.
      this.logger.error({ err }, 'cannot release prefetched entries');
    }
    this.wakeup.notify();
    const all = Promise.all(this.loops);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>(
      (resolve) => (timer = setTimeout(resolve, timerDelay(deadline - Date.now()))),
    );
    await Promise.race([all, late]);
    clearTimeout(timer);
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
    if (this.held.size > 0) {
      this.logger.warn(
        { events: this.held.size },
        this.config.durability === 'memory'
          ? 'shutdown deadline: sends still in flight are abandoned'
          : 'shutdown deadline: releasing unsent entries for the next start',
      );
      try {
        this.queue.release([...this.held]);
      } catch (err) {
        // Still leased: released when the journal is next opened, as after a crash.
        this.logger.error({ err, events: this.held.size }, 'cannot release unsent entries at shutdown');
      }
      this.held.clear();
      this.abandoned = true;
    }
    // Give-ups held back since the last line would otherwise never be told.
    for (const [reason, log] of this.giveUpLogs) {
      const suppressed = log.throttle.drain();
      if (suppressed === 0) continue;
      this.logger.error(
        { reason, suppressed, suppressedEvents: log.events, fallback: this.config.fallback },
        'delivery given up since the last line logged for this reason (at shutdown)',
      );
      log.events = 0;
    }
  }

  private async drain(deadline: number): Promise<void> {
    for (;;) {
      const now = Date.now();
      if (now >= deadline || this.queue.depth().count === 0) return;
      // Nothing in flight, and no worker can send before the deadline: nothing due by then, or every
      // worker pausing past it (a destination that asked to wait with Retry-After).
      const next = this.queue.nextDueAt();
      const ready = Math.max(next ?? Number.POSITIVE_INFINITY, Math.min(...this.resumeAt));
      if (this.sends.size === 0 && ready >= deadline) return;
      await new Promise((resolve) => setTimeout(resolve, Math.min(DRAIN_POLL_MS, deadline - now)));
    }
  }

  close(): Promise<void> {
    return this.destination.close();
  }
}
