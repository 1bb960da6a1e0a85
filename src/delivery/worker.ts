import type { Logger } from 'pino';
import type { DestinationConfig } from '../config/types.ts';
import type { Destination } from '../destinations/types.ts';
import { backoffDelay, budgetExhausted } from './backoff.ts';
import { classify, type Classification } from './errors.ts';
import type { DeliveryQueue, GiveUp, QueueEntry } from './queue.ts';

/** What a destination's workers report, for metrics and health. */
export interface DeliveryObserver {
  success(entries: readonly QueueEntry[], now: number): void;
  retry(entries: readonly QueueEntry[], failure: Classification): void;
  gaveUp(count: number, deadLetters: number, toFallback: boolean, failure: Classification): void;
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
      const timer = setTimeout(done, Math.max(0, ms));
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

/** Longest sleep with nothing due: entries the dlq CLI replays are picked up within this. */
const IDLE_POLL_MS = 1000;

/**
 * The workers of one destination: claim due entries with a lease, send, then ack, reschedule with
 * backoff, or give up (dead letters / fallback). `queue.concurrency` workers run at once; a slow or
 * dead destination only ever occupies its own workers.
 */
export class DestinationWorkers {
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
  private stopping = false;
  private readonly held = new Set<QueueEntry>();
  /** Set once shutdown released what was held: late results must not touch the closed queue. */
  private abandoned = false;
  /** Consecutive failed sends, for health. */
  consecutiveFailures = 0;
  lastError: string | undefined;
  lastErrorAt: number | undefined;

  constructor(
    config: DestinationConfig,
    queue: DeliveryQueue,
    destination: Destination,
    observer: DeliveryObserver,
    logger: Logger,
  ) {
    this.config = config;
    this.queue = queue;
    this.destination = destination;
    this.observer = observer;
    this.logger = logger;
  }

  setFallback(queue: DeliveryQueue | undefined, wake?: () => void): void {
    this.fallback = queue;
    this.wakeFallback = wake;
  }

  start(): void {
    for (let i = 0; i < this.config.queue.concurrency; i++) this.loops.push(this.loop());
  }

  /** New entries were committed for this destination. */
  notify(): void {
    this.wakeup.notify();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      let batch: QueueEntry[];
      try {
        batch = await this.collect();
      } catch (err) {
        this.logger.error({ err }, 'cannot read the queue');
        await this.wakeup.wait(IDLE_POLL_MS);
        continue;
      }
      if (batch.length === 0) continue;
      const pause = await this.deliver(batch);
      // A failing destination is probed once per backoff, not once per queued entry.
      // New events wake an idle worker, not a pausing one: keep sleeping until the pause is over.
      const resumeAt = Date.now() + pause;
      while (!this.stopping && Date.now() < resumeAt) await this.wakeup.wait(resumeAt - Date.now());
    }
  }

  /** Claims a batch: what is due now, waiting up to `batch.timeout` for it to fill. */
  private async collect(): Promise<QueueEntry[]> {
    const { batch: policy, queue: queueConfig } = this.config;
    const now = Date.now();
    const batch = this.queue.claim(now, policy.max_events, policy.max_bytes, queueConfig.lease);
    if (batch.length === 0) {
      const next = this.queue.nextDueAt();
      const wait = next === undefined ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, next - now);
      if (wait > 0 && !this.stopping) await this.wakeup.wait(wait);
      return batch;
    }
    for (const e of batch) this.held.add(e);
    let bytes = batch.reduce((n, e) => n + e.bytes, 0);
    while (
      !this.stopping &&
      batch.length < policy.max_events &&
      policy.timeout > 0 &&
      (policy.max_bytes === 0 || bytes < policy.max_bytes)
    ) {
      const remaining = batch[0]!.enqueuedAt + policy.timeout - Date.now();
      if (remaining <= 0) break;
      await this.wakeup.wait(remaining);
      const more = this.queue.claim(
        Date.now(),
        policy.max_events - batch.length,
        policy.max_bytes > 0 ? policy.max_bytes - bytes : 0,
        queueConfig.lease,
      );
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
    this.observer.inFlight(batch.length);
    let failure: unknown;
    try {
      await this.sendWithDeadline(batch);
    } catch (err) {
      failure = err;
    } finally {
      this.observer.inFlight(-batch.length);
      for (const e of batch) this.held.delete(e);
    }
    if (this.abandoned) return 0;
    const done = Date.now();
    if (failure === undefined) {
      this.queue.ack(batch);
      this.consecutiveFailures = 0;
      this.observer.success(batch, done);
      return 0;
    }
    const classification = classify(failure, this.config.retry);
    this.consecutiveFailures++;
    this.lastError = classification.message;
    this.lastErrorAt = done;
    const retry: QueueEntry[] = [];
    const giveUp: GiveUp[] = [];
    for (const e of batch) {
      if (
        !classification.retryable ||
        budgetExhausted(this.config.retry, e.attempts, e.firstAttemptAt ?? done, done)
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
    const pause = classification.retryable
      ? backoffDelay(this.config.retry, this.consecutiveFailures, classification.retryAfterMs)
      : 0;
    if (retry.length > 0) {
      const delay = backoffDelay(this.config.retry, retry[0]!.attempts, classification.retryAfterMs);
      this.queue.reschedule(retry, done + delay, classification.message, done);
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
    if (giveUp.length > 0) {
      const dead = this.queue.giveUp(giveUp, this.fallback, done);
      this.observer.gaveUp(giveUp.length, dead, this.fallback !== undefined, classification);
      if (this.fallback) this.wakeFallback?.();
      this.logger.error(
        {
          events: giveUp.length,
          reason: giveUp[0]!.reason,
          error: classification.message,
          fallback: this.config.fallback,
        },
        this.fallback
          ? 'delivery given up, handed to the fallback destination'
          : 'delivery given up, moved to dead letters',
      );
    }
    return pause;
  }

  /** Bounds every send, whatever the destination does (a send stuck past this is retried). */
  private async sendWithDeadline(batch: QueueEntry[]): Promise<void> {
    const limit = this.config.request.timeout + 5000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(Object.assign(new Error(`send did not finish within ${limit} ms`), { code: 'ETIMEDOUT' })),
        limit,
      );
    });
    try {
      await Promise.race([this.destination.send(batch.map((e) => e.event)), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops claiming; waits for in-flight sends up to `deadline`, then returns the rest unsent. */
  async stop(deadline: number): Promise<void> {
    this.stopping = true;
    this.wakeup.notify();
    const all = Promise.all(this.loops);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>(
      (resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))),
    );
    await Promise.race([all, late]);
    clearTimeout(timer);
    if (this.held.size > 0) {
      this.logger.warn(
        { events: this.held.size },
        'shutdown deadline: releasing unsent entries for the next start',
      );
      this.queue.release([...this.held]);
      this.held.clear();
      this.abandoned = true;
    }
  }

  close(): Promise<void> {
    return this.destination.close();
  }
}
