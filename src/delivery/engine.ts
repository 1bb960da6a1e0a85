import { asError } from '../util/error.ts';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { DeliveryConfig, DestinationConfig } from '../config/types.ts';
import type { Destination } from '../destinations/types.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { Metrics } from '../metrics/registry.ts';
import { HotCounter, type CounterHandle } from '../metrics/hot-counter.ts';
import { compileFilter } from '../routing/filter.ts';
import { DEDUP_MAX_KEYS, Deduplicator } from '../routing/dedup.ts';
import type { DestinationHealth, Router } from '../routing/router.ts';
import {
  Journal,
  JournalUnavailableError,
  orphanedInUnopenedJournal,
  type JournalItem,
  type Orphaned,
  type SqliteQueue,
} from './journal.ts';
import { MemoryQueue } from './memory-queue.ts';
import type { DeliveryQueue } from './queue.ts';
import { DestinationWorkers, type DeliveryObserver } from './worker.ts';
import { LogThrottle } from '../util/log-throttle.ts';

export interface EngineDestination {
  config: DestinationConfig;
  destination: Destination;
}

interface Route {
  config: DestinationConfig;
  decisions: {
    routed: CounterHandle;
    filtered: CounterHandle;
    deduplicated: CounterHandle;
    /** Only with a CEL expression: nothing else in a filter can fail at run time. */
    celError: CounterHandle | undefined;
  };
  accepts: (event: FalcoEvent) => boolean;
  /** Set by the filter's onError while accepts() runs: the refusal was a CEL run-time error. */
  celFailed: boolean;
  dedup: Deduplicator | undefined;
  workers: DestinationWorkers;
  durable: SqliteQueue | undefined;
  memory: MemoryQueue | undefined;
  /** The route of `config.fallback`, and those whose fallback this one is (set once all exist). */
  fallback: Route | undefined;
  feeders: Route[];
}

/** Eyrie's delivery metrics (Falcosidekick's counters live in Metrics). */
function deliveryMetrics(metrics: Metrics) {
  const registers = [metrics.registry];
  const sending = new Map<string, { value: number }>();
  return {
    outcomes: new HotCounter({
      name: 'eyrie_delivery_events_total',
      help: 'Delivery outcomes per destination: success, retry, dead_letter, fallback, dropped (with reason)',
      labelNames: ['destination', 'outcome', 'reason'] as const,
      registers,
    }),
    latency: new Histogram({
      name: 'eyrie_delivery_latency_seconds',
      help: 'Time from ingest commit to successful delivery',
      labelNames: ['destination'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600],
      registers,
    }),
    inFlight: new Gauge({
      name: 'eyrie_delivery_in_flight',
      help: 'Sends (requests) in flight now',
      labelNames: ['destination'] as const,
      registers,
      // Read at scrape time: a labelled inc() twice per send hashed its labels each time.
      collect() {
        for (const [destination, count] of sending) this.set({ destination }, count.value);
      },
    }),
    /** Sends in flight now per destination, kept by the workers' observers. */
    sending,
    commit: new Histogram({
      name: 'eyrie_journal_commit_seconds',
      help: 'Duration of each group commit of the journal',
      // Up to 30 s: a stalled disk holds commits for seconds, which a top bucket of 1 s would hide
      // (histogram_quantile answers the largest finite bound, EyrieJournalCommitSlow would say 1s).
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 5, 10, 30],
      registers,
    }),
    routing: new HotCounter({
      name: 'eyrie_routing_events_total',
      help: "Routing decisions per destination: routed, filtered, deduplicated, cel_error (the filter's CEL expression failed on the event: not delivered)",
      labelNames: ['destination', 'decision'] as const,
      registers,
    }),
  };
}

/**
 * What only the log said about the journal (a stalled disk, results it cannot record), counted from
 * 0 at start so that an alert on increase() sees the first one. Only when a journal is open.
 */
function journalTroubleMetrics(metrics: Metrics) {
  const registers = [metrics.registry];
  return {
    // The commit histogram misses a claim or an ack that stalls, and a scrape waiting through the
    // stall times out, so the event-loop lag it would have shown never reaches Prometheus.
    slowWrites: new Counter({
      name: 'eyrie_journal_slow_writes_total',
      help: 'Journal writes (commits, claims, acks) that held the event loop 1 s or more: nothing was answered meanwhile',
      registers,
    }),
    unrecordedResults: new Counter({
      name: 'eyrie_journal_unrecorded_results_total',
      help: 'Delivery results (acks, retries, give-ups) the journal could not record: those entries are sent again when their lease expires',
      registers,
    }),
  };
}

/**
 * While a shutdown waits for sends (up to delivery.shutdown_timeout: a memory queue sent on until
 * empty, requests in flight), what it still waits for is logged this often: a quiet wait of that
 * long reads as a hung process.
 */
const SHUTDOWN_PROGRESS_INTERVAL_MS = 2000;

/** At most one warning per destination per this many ms about its CEL filter failing. */
const CEL_ERROR_LOG_INTERVAL_MS = 60_000;

/** At most one warning per this many ms about slow journal writes (a slow disk makes them all slow). */
const SLOW_WRITE_LOG_INTERVAL_MS = 60_000;

/**
 * How long a destination whose last send failed counts as degraded in /healthz once it has nothing
 * queued (its failed entries went to dead letters or the fallback).
 */
export const FAILED_DESTINATION_HEALTH_WINDOW_MS = 5 * 60_000;

/** Seconds a queued entry has waited; never below 0, as the wall clock may have been stepped back. */
function secondsSince(enqueuedAt: number, now: number): number {
  return Math.max(0, now - enqueuedAt) / 1000;
}

/** The keys a batch added to dedup tables are settled (taken, or refused and forgotten first). */
function settleDedup(remembered: readonly { dedup: Deduplicator }[]): void {
  for (const { dedup } of remembered) dedup.settled(); // O(1) below the cap
}

/**
 * The durable delivery engine: routes each accepted event through every destination's filter and
 * dedup, commits it to the journal (group commit) before the sender gets its answer, and runs each
 * destination's workers over its own queue.
 */
export class DeliveryEngine implements Router {
  /** Only when a destination is durable: without one, no database is created or opened. */
  private readonly journal: Journal | undefined;
  private readonly routes: Route[] = [];
  private readonly logger: Logger;
  private readonly config: DeliveryConfig;
  private readonly metrics: ReturnType<typeof deliveryMetrics>;
  private readonly resyncTimer: NodeJS.Timeout | undefined;
  /** Counts the drops of every queue while memory queues are handed over at shutdown; undefined before. */
  private shutdownDrops: number | undefined;
  private readonly shutdownProgressInterval: number;
  private closed = false;

  constructor(options: {
    dataDir: string;
    delivery: DeliveryConfig;
    destinations: EngineDestination[];
    metrics: Metrics;
    logger: Logger;
    /** Keys each dedup table holds at most (default DEDUP_MAX_KEYS; tests lower it). */
    dedupMaxKeys?: number;
    /** How often a shutdown logs what it still waits for (default SHUTDOWN_PROGRESS_INTERVAL_MS; tests lower it). */
    shutdownProgressInterval?: number;
    /**
     * The configuration's secret values (secretValues): a receiver's error answer may echo the
     * request's credentials, and the errors kept for /healthz (unauthenticated) and dead letters
     * must not show them, as the log does not.
     */
    secrets?: readonly string[];
  }) {
    this.logger = options.logger;
    this.config = options.delivery;
    this.shutdownProgressInterval = options.shutdownProgressInterval ?? SHUTDOWN_PROGRESS_INTERVAL_MS;
    const m = deliveryMetrics(options.metrics);
    this.metrics = m;
    const slowWriteLog = new LogThrottle(SLOW_WRITE_LOG_INTERVAL_MS);
    // An exporter or a memory-only setup may run where the data dir cannot be written: no journal then.
    const durable = options.destinations.some((d) => d.config.durability !== 'memory');
    const journalTrouble = durable ? journalTroubleMetrics(options.metrics) : undefined;
    const journal = durable
      ? new Journal({
          dataDir: options.dataDir,
          commitInterval: options.delivery.commit_interval,
          commitMaxEvents: options.delivery.commit_max_events,
          diskCap: options.delivery.disk_cap,
          onCommit: (seconds) => m.commit.observe(seconds),
          onSlowWrite: (seconds) => {
            journalTrouble!.slowWrites.inc();
            const suppressed = slowWriteLog.take();
            if (suppressed === undefined) return;
            this.logger.warn(
              { seconds: Math.round(seconds * 10) / 10, suppressed },
              'a journal write held the event loop: no request was answered meanwhile (check the disk of storage.path)',
            );
          },
          onSettleError: (err, entries) => {
            journalTrouble!.unrecordedResults.inc(entries);
            this.logger.error(
              { err, entries },
              'cannot record delivery results; these entries will be sent again when their lease expires',
            );
          },
          onCheckpointError: (err, fallback) =>
            this.logger.warn(
              { err },
              fallback
                ? 'the journal checkpoint thread stopped; checkpoints now run inside commits'
                : 'cannot checkpoint the journal WAL; it grows until a checkpoint succeeds',
            ),
        })
      : undefined;
    this.journal = journal;
    const sidekickOutputs = options.metrics.sidekickOutputs;

    for (const { config, destination } of options.destinations) {
      const name = config.name;
      const onDrop = (reason: string, count: number) => {
        m.outcomes.inc({ destination: name, outcome: 'dropped', reason }, count);
        if (this.shutdownDrops !== undefined) this.shutdownDrops += count;
      };
      // Shown at 0 from the start: an alert on increase() (which needs a sample before the first
      // drop) then fires on the first one. Their reasons are known in advance, unlike dead letters'.
      for (const reason of ['queue_full_oldest', 'queue_full_newest'].concat(
        config.durability === 'memory' ? ['gave_up_memory'] : [],
      ))
        m.outcomes.handle({ destination: name, outcome: 'dropped', reason });
      const caps = {
        maxEvents: config.queue.max_events,
        maxBytes: config.queue.max_bytes,
        whenFull: config.queue.when_full,
      };
      let queue: DeliveryQueue;
      let durable: SqliteQueue | undefined;
      let memory: MemoryQueue | undefined;
      if (config.durability === 'memory') {
        memory = new MemoryQueue(name, caps, onDrop);
        queue = memory;
      } else {
        durable = journal!.queue(name, caps, onDrop);
        queue = durable;
      }
      // Falcosidekick has no stdout output: its `debug: true` printing (a translated config's `debug`
      // destination) counts nothing in its outputs counter.
      const sidekick = config.type === 'stdout' ? undefined : sidekickOutputs;
      // Handles of the per-event series, made on first use (a series appears once it counts).
      let succeeded: CounterHandle | undefined;
      let sentOk: CounterHandle | undefined;
      const inFlight = { value: 0 };
      m.sending.set(name, inFlight);
      const observer: DeliveryObserver = {
        success: (entries, now) => {
          succeeded ??= m.outcomes.handle({ destination: name, outcome: 'success', reason: '' });
          sentOk ??= sidekick?.handle({ destination: name, status: 'ok' });
          succeeded.inc(entries.length);
          sentOk?.inc(entries.length);
          for (const e of entries)
            m.latency.observe({ destination: name }, Math.max(0, now - e.enqueuedAt) / 1000);
        },
        retry: (entries, failure) => {
          m.outcomes.inc({ destination: name, outcome: 'retry', reason: failure.reason }, entries.length);
          sidekick?.inc({ destination: name, status: 'error' }, entries.length);
        },
        gaveUp: (count, dead, toFallback, reason) => {
          sidekick?.inc({ destination: name, status: 'error' }, count);
          if (toFallback) m.outcomes.inc({ destination: name, outcome: 'fallback', reason }, count);
          if (dead > 0) m.outcomes.inc({ destination: name, outcome: 'dead_letter', reason }, dead);
          const dropped = toFallback ? 0 : count - dead;
          if (dropped > 0)
            m.outcomes.inc({ destination: name, outcome: 'dropped', reason: 'gave_up_memory' }, dropped);
        },
        inFlight: (delta) => {
          inFlight.value += delta;
        },
      };
      const workers = new DestinationWorkers(
        config,
        queue,
        destination,
        observer,
        this.logger.child({ destination: name }),
        options.secrets,
      );
      const expression = config.filter?.cel;
      const route: Route = {
        config,
        decisions: {
          routed: m.routing.handle({ destination: name, decision: 'routed' }),
          filtered: m.routing.handle({ destination: name, decision: 'filtered' }),
          deduplicated: m.routing.handle({ destination: name, decision: 'deduplicated' }),
          celError:
            typeof expression === 'string'
              ? m.routing.handle({ destination: name, decision: 'cel_error' })
              : undefined,
        },
        accepts: () => true,
        celFailed: false,
        dedup: config.dedup
          ? new Deduplicator(config.dedup, undefined, options.dedupMaxKeys ?? DEDUP_MAX_KEYS)
          : undefined,
        workers,
        durable,
        memory,
        fallback: undefined,
        feeders: [],
      };
      // A CEL run-time error (e.g. a missing key) refuses the event, as a non-match would, but it is
      // counted as cel_error and logged: at most once a minute, with the errors not logged since.
      const celErrorLog = new LogThrottle(CEL_ERROR_LOG_INTERVAL_MS);
      route.accepts = compileFilter(config.filter, `destinations.${name}.filter`, {
        onError: (err, event) => {
          route.celFailed = true;
          const suppressed = celErrorLog.take();
          if (suppressed === undefined) return;
          this.logger.warn(
            { destination: name, expression, rule: event.rule, error: err.message, suppressed },
            'CEL filter error: the event is not delivered to this destination (one warning a minute at most; suppressed = errors since the last one)',
          );
        },
      });
      this.routes.push(route);
    }
    for (const route of this.routes) {
      if (route.config.fallback === undefined) continue;
      const target = this.routes.find((r) => r.config.name === route.config.fallback);
      if (!target)
        throw new Error(
          `destination ${route.config.name}: fallback ${route.config.fallback} is not a destination`,
        );
      route.fallback = target;
      target.feeders.push(route);
      const name = route.config.name;
      const wake = () => target.workers.notify();
      route.workers.setFallback(target.workers.queue, wake);
      // What the caps turn away is not dropped either: a full queue behind a dead destination never
      // spends its events' retry budgets (a failing destination is probed once per backoff).
      route.workers.queue.setOverflow(target.workers.queue, (reason, count) => {
        this.metrics.outcomes.inc({ destination: name, outcome: 'fallback', reason }, count);
        wake();
      });
    }
    this.registerQueueGauges(options.metrics);
    if (journal) {
      if (journal.lastError !== undefined)
        this.logger.error(
          { error: journal.lastError },
          'the journal could not be written at start: its writes, and ingest with them, may fail until it can',
        );
      this.warnOrphaned(journal.orphanedEntries());
      // A cap lowered below what a queue holds: its next event would drop the excess at once
      // (drop_oldest), or every event until it drains (drop_newest). Counted then, but said now.
      const now = Date.now();
      for (const { config, durable } of this.routes) {
        const { count, bytes, oldestEnqueuedAt } = durable?.depth() ?? { count: 0, bytes: 0 };
        // A restart resumes every queue: say what each takes up again, and how old it is, so a
        // backlog left by an outage or a crash is seen at once (and its drain can be watched).
        if (count > 0)
          this.logger.info(
            {
              destination: config.name,
              events: count,
              bytes,
              oldestAgeSeconds:
                oldestEnqueuedAt === undefined ? undefined : Math.round(secondsSince(oldestEnqueuedAt, now)),
            },
            'resuming the entries queued in the journal by an earlier run',
          );
        const { max_events: maxEvents, max_bytes: maxBytes, when_full: whenFull } = config.queue;
        if ((maxEvents > 0 && count > maxEvents) || (maxBytes > 0 && bytes > maxBytes))
          this.logger.warn(
            { destination: config.name, events: count, bytes, maxEvents, maxBytes, whenFull },
            `queue holds more than its caps (lowered since?): ${
              whenFull === 'drop_oldest'
                ? 'the next event queued turns away the oldest entries beyond them, at once'
                : 'new events are turned away until it drains below them'
            }, ${config.fallback === undefined ? 'dropped (counted)' : 'to its fallback'}`,
          );
      }
      // The dlq CLI may add or remove rows while we run: keep cached depths honest (queue caps use them).
      this.resyncTimer = setInterval(() => {
        try {
          journal.refreshIfChangedElsewhere();
        } catch (err) {
          // A read that failed (an I/O error): the cached depths stay as they are until the next one.
          this.logger.warn({ err }, 'cannot re-read the queue depths from the journal');
        }
      }, 5000);
      this.resyncTimer.unref();
    }
    // No journal opened: one left by an earlier configuration (its durable destinations all removed
    // or made memory-only) would otherwise keep its queues and dead letters without a word.
    if (!journal) {
      const orphaned = orphanedInUnopenedJournal(options.dataDir);
      if (orphaned) this.warnOrphaned(orphaned);
    }
    for (const route of this.routes) route.workers.start();
  }

  /** At start: what the journal keeps for destinations this configuration has no durable queue for. */
  private warnOrphaned({ queued, deadLetters }: Orphaned): void {
    for (const [destination, events] of queued)
      this.logger.warn(
        { destination, events },
        'events queued for a destination this configuration has no durable queue for: kept in the journal, delivered only if it returns under that name (eyrie queue move -d NAME --to NEW hands them to another destination, eyrie queue purge -d NAME deletes them)',
      );
    for (const [destination, count] of deadLetters)
      this.logger.warn(
        { destination, deadLetters: count },
        'dead letters of a destination this configuration has no durable queue for: kept in the journal (eyrie dlq list / purge -d NAME)',
      );
  }

  /** For scrapes and /healthz: the cached counts, re-read first if the dlq CLI wrote meanwhile. */
  private refreshCounts(): void {
    try {
      this.journal?.refreshIfChangedElsewhere();
    } catch {
      // An I/O error: the cached counts are shown as they are; the resync timer logs it.
    }
  }

  private registerQueueGauges(metrics: Metrics): void {
    const routes = this.routes;
    const registers = [metrics.registry];
    const refresh = () => this.refreshCounts();
    new Gauge({
      name: 'eyrie_queue_depth',
      help: 'Events waiting for delivery per destination',
      labelNames: ['destination'] as const,
      registers,
      collect() {
        refresh();
        for (const r of routes) this.set({ destination: r.config.name }, r.workers.queue.depth().count);
      },
    });
    new Gauge({
      name: 'eyrie_queue_bytes',
      help: 'Bytes of events waiting for delivery per destination',
      labelNames: ['destination'] as const,
      registers,
      collect() {
        refresh();
        for (const r of routes) this.set({ destination: r.config.name }, r.workers.queue.depth().bytes);
      },
    });
    new Gauge({
      name: 'eyrie_queue_oldest_age_seconds',
      help: 'Age of the oldest event waiting per destination (0 when empty)',
      labelNames: ['destination'] as const,
      registers,
      collect() {
        const now = Date.now();
        for (const r of routes) {
          const oldest = r.workers.queue.depth().oldestEnqueuedAt;
          this.set({ destination: r.config.name }, oldest === undefined ? 0 : secondsSince(oldest, now));
        }
      },
    });
    const journal = this.journal;
    if (journal !== undefined) {
      // What `delivery.disk_cap` limits, and the cap: an alert can warn before ingest answers 503.
      new Gauge({
        name: 'eyrie_journal_used_bytes',
        help: "Bytes of the journal's pages in use (events, queues, dead letters): what delivery.disk_cap limits",
        registers,
        collect() {
          try {
            this.set(journal.usedBytes());
          } catch {
            // An I/O error: left at its last value; /healthz and the commit that fails say why.
          }
        },
      });
      new Gauge({
        name: 'eyrie_journal_disk_cap_bytes',
        help: 'delivery.disk_cap in bytes (0: no cap)',
        registers,
      }).set(journal.diskCap);
    }
    new Gauge({
      name: 'eyrie_dead_letters',
      help: 'Events in dead letters per destination',
      labelNames: ['destination'] as const,
      registers,
      collect() {
        refresh();
        for (const r of routes) this.set({ destination: r.config.name }, r.workers.queue.deadLetterCount());
      },
    });
  }

  route(events: readonly FalcoEvent[]): Promise<void> | undefined {
    try {
      return this.routeNow(events);
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  private routeNow(events: readonly FalcoEvent[]): Promise<void> | undefined {
    // A refused batch must leave no trace (no dedup key, no memory-queue entry): the sender retries it.
    if (this.closed) throw new JournalUnavailableError('shutting down: not accepting events');
    // The disk cap is checked by the journal's append: events only for memory destinations pass.
    const remembered: { dedup: Deduplicator; event: FalcoEvent; ticket: number }[] = [];
    const items: JournalItem[] = [];
    const memory: { queue: MemoryQueue; event: FalcoEvent }[] = [];
    const now = Date.now();
    const touched = new Set<Route>();
    // Counted once the batch is accepted: a refused one is sent again, and would be counted twice.
    const decisions: CounterHandle[] = [];
    let deduplicated = false;
    for (const event of events) {
      const targets: SqliteQueue[] = [];
      for (const route of this.routes) {
        if (!route.accepts(event)) {
          if (route.celFailed) {
            route.celFailed = false;
            decisions.push(route.decisions.celError!);
          } else decisions.push(route.decisions.filtered);
          continue;
        }
        if (route.dedup !== undefined) {
          const ticket = route.dedup.remember(event);
          if (ticket === undefined) {
            decisions.push(route.decisions.deduplicated);
            deduplicated = true;
            continue;
          }
          remembered.push({ dedup: route.dedup, event, ticket });
        }
        decisions.push(route.decisions.routed);
        touched.add(route);
        if (route.durable) targets.push(route.durable);
        else memory.push({ queue: route.memory!, event });
      }
      if (targets.length > 0) items.push({ event, destinations: targets });
    }
    // Only once the batch is accepted: memory queues take nothing from a batch the journal refused.
    const handOver = () => {
      settleDedup(remembered);
      for (const decision of decisions) decision.inc();
      for (const m of memory) m.queue.push(m.event, now);
      // Workers that claim ahead were handed their entries (or told) by the journal commit itself.
      for (const route of touched) if (route.memory || !route.workers.prefetching) route.workers.notify();
    };
    // A duplicate may be of an event whose commit is still pending: should that commit fail, the
    // first is refused and forgotten, and this one must not have been answered 200 meanwhile.
    const committed =
      items.length > 0
        ? this.journal!.append(items) // items is only filled for durable destinations: there is a journal
        : deduplicated
          ? this.journal?.whenPendingCommitted()
          : undefined;
    if (committed === undefined) {
      handOver();
      return undefined;
    }
    return committed.then(handOver, (err: unknown) => {
      for (const r of remembered) r.dedup.forget(r.event, r.ticket);
      settleDedup(remembered);
      throw err;
    });
  }

  health(now = Date.now()): DestinationHealth[] {
    this.refreshCounts();
    return this.routes.map((r) => {
      const w = r.workers;
      const { count: queued, oldestEnqueuedAt } = w.queue.depth();
      // Once the entries that failed have left the queue (dead letters, fallback), nothing tries
      // the destination again until the next event: it stays degraded for a while, not for good.
      const failing =
        w.consecutiveFailures > 0 &&
        (queued > 0 || now - (w.lastErrorAt ?? 0) < FAILED_DESTINATION_HEALTH_WINDOW_MS);
      const lastError = w.readError ?? w.lastError;
      return {
        name: r.config.name,
        type: r.config.type,
        healthy: !failing && w.readError === undefined,
        ...(lastError !== undefined ? { lastError } : {}),
        ...(w.lastErrorAt !== undefined ? { lastErrorAt: new Date(w.lastErrorAt).toISOString() } : {}),
        queued,
        // A slow receiver fails nothing, so it stays healthy while falling behind: the age says so
        // to someone without Prometheus (the gauge is eyrie_queue_oldest_age_seconds).
        ...(oldestEnqueuedAt !== undefined
          ? { oldestAgeSeconds: Math.round(secondsSince(oldestEnqueuedAt, now)) }
          : {}),
        deadLetters: w.queue.deadLetterCount(),
      };
    });
  }

  /** For /healthz: the journal itself. Either way it fails, ingest answers 503. */
  journalHealth(): { ok: boolean; detail?: string } {
    const journal = this.journal;
    if (journal === undefined) return { ok: true };
    if (journal.lastError !== undefined) return { ok: false, detail: journal.lastError };
    if (journal.settleError !== undefined)
      return {
        ok: false,
        detail: `cannot record delivery results (${journal.settleError}): delivered entries are sent again when their lease expires`,
      };
    try {
      const over = journal.overDiskCap();
      if (over !== undefined) {
        return {
          ok: false,
          detail:
            over.limit === 'disk_cap'
              ? `over delivery.disk_cap (${this.config.disk_cap} bytes): events are refused until deliveries free space`
              : `${over.message}: events are refused until space is freed`,
        };
      }
    } catch (err) {
      return { ok: false, detail: `cannot read the journal's size: ${(err as Error).message}` };
    }
    return { ok: true };
  }

  /** Resolves once the journal's helper thread runs: started, nothing left to load. */
  ready(): Promise<void> {
    return this.journal?.ready() ?? Promise.resolve();
  }

  /**
   * What a memory queue still holds once its workers stopped: handed to its fallback when that one is
   * durable (journaled before the journal closes, sent after the next start) or a memory queue settled
   * after this one (which passes it on down its chain), else dropped, counted (reason `shutdown`) and logged.
   */
  private settleMemoryAtShutdown(route: Route): void {
    const left = route.memory?.takeAll() ?? [];
    if (left.length === 0) return;
    const name = route.config.name;
    const target = route.fallback;
    // What the caps down the chain turn away while these are handed over is dropped, and the metrics
    // listener has closed: only the log can tell the operator, so it must not call them handed over.
    const droppedBefore = this.shutdownDrops ?? 0;
    const reportCapDrops = () => {
      const dropped = (this.shutdownDrops ?? 0) - droppedBefore;
      if (dropped > 0)
        this.logger.warn(
          { destination: name, events: dropped, fallback: target?.config.name },
          'shutdown: queue caps down the fallback chain turned away events while memory events were handed over: they are lost',
        );
    };
    if (target?.memory !== undefined) {
      // A memory fallback is settled after its feeders (see close): it takes them within its caps, what
      // those turn away goes to its own fallback, and what it holds then goes down the chain in turn.
      const now = Date.now();
      for (const { event, enqueuedAt } of left) target.memory.adopt(event, enqueuedAt, now);
      this.metrics.outcomes.inc({ destination: name, outcome: 'fallback', reason: 'shutdown' }, left.length);
      reportCapDrops();
      return;
    }
    if (target?.durable !== undefined && this.journal !== undefined) {
      const queue = target.durable;
      const now = Date.now();
      try {
        this.journal.write(() => {
          for (const { event, enqueuedAt } of left) queue.adopt(event, enqueuedAt, now);
        });
        this.metrics.outcomes.inc(
          { destination: name, outcome: 'fallback', reason: 'shutdown' },
          left.length,
        );
        this.logger.warn(
          { destination: name, events: left.length, fallback: target.config.name },
          'shutdown: events not sent from memory handed to the fallback, sent after the next start',
        );
        reportCapDrops();
        return;
      } catch (err) {
        this.logger.error({ err, destination: name }, 'shutdown: cannot hand memory events to the fallback');
      }
    }
    this.metrics.outcomes.inc({ destination: name, outcome: 'dropped', reason: 'shutdown' }, left.length);
    this.logger.warn(
      { destination: name, events: left.length },
      'shutdown: events queued in memory (durability: memory) were not sent and are lost',
    );
  }

  /** Every route, each after the routes whose fallback it is. */
  private feedersFirst(): Route[] {
    const order: Route[] = [];
    const seen = new Set<Route>();
    const visit = (route: Route): void => {
      if (seen.has(route)) return; // visited, or a fallback loop (which the config check refuses)
      seen.add(route);
      for (const feeder of route.feeders) visit(feeder);
      order.push(route);
    };
    for (const route of this.routes) visit(route);
    return order;
  }

  /**
   * During close: per destination not stopped yet, its sends in flight and (memory) events still
   * queued, with the seconds left before the deadline; nothing when it waits for nothing any more.
   */
  private logShutdownWait(deadline: number, done: ReadonlySet<Route>): void {
    const waiting: Record<string, { inFlight: number; queued?: number }> = {};
    let any = false;
    for (const route of this.routes) {
      if (done.has(route)) continue;
      const inFlight = this.metrics.sending.get(route.config.name)?.value ?? 0;
      const queued = route.memory?.depth().count ?? 0;
      if (inFlight === 0 && queued === 0) continue;
      waiting[route.config.name] = route.memory === undefined ? { inFlight } : { inFlight, queued };
      any = true;
    }
    if (!any) return;
    this.logger.info(
      { waiting, secondsLeft: Math.max(0, Math.round((deadline - Date.now()) / 1000)) },
      'shutdown: still sending (sends in flight, and memory queues sent on until empty, until delivery.shutdown_timeout)',
    );
  }

  /** Flushes the journal, lets in-flight sends finish within the shutdown timeout, closes everything. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.resyncTimer);
    this.journal?.flush();
    const deadline = Date.now() + this.config.shutdown_timeout;
    // A fallback stops after the destinations that hand over to it: what they give up while they
    // finish (a memory queue sent on until empty) still finds its workers running. Then, in the same
    // order, what memory queues still hold goes on down their chains of fallbacks.
    const order = this.feedersFirst();
    const stopped = new Map<Route, Promise<void>>();
    const done = new Set<Route>();
    for (const route of order) {
      const feeders = route.feeders.map((f) => stopped.get(f) ?? Promise.resolve());
      stopped.set(
        route,
        Promise.all(feeders)
          .then(() => route.workers.stop(deadline))
          .then(() => void done.add(route)),
      );
    }
    const progress = setInterval(() => this.logShutdownWait(deadline, done), this.shutdownProgressInterval);
    progress.unref();
    try {
      await Promise.all(stopped.values());
    } finally {
      clearInterval(progress);
    }
    this.shutdownDrops = 0;
    for (const route of order) this.settleMemoryAtShutdown(route);
    await Promise.allSettled(this.routes.map((r) => r.workers.close()));
    // Also writes the acks of the sends that finished meanwhile.
    await this.journal?.close();
  }
}
