import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openSqlite } from '../../src/store/sqlite.ts';
import type { EyrieConfig } from '../../src/config/types.ts';
import { DeliveryEngine } from '../../src/delivery/engine.ts';
import type { Destination } from '../../src/destinations/types.ts';
import { PartialRejectionError } from '../../src/delivery/errors.ts';
import { parseFalcoEvent, type FalcoEvent } from '../../src/event/falco-event.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { configFromYaml } from './config-file.ts';
import { generateEvents } from './events.ts';
import { silentLogger } from './ingest.ts';
import type { Logger } from 'pino';

/** What a fake destination does with one send: resolve (delivered), throw, or never settle. */
export type Behaviour = (events: readonly FalcoEvent[], fake: FakeDestination) => Promise<void> | void;

/** Always succeeds. */
export const succeed: Behaviour = () => undefined;

/** Always throws what `error()` makes. */
export const failWith =
  (error: () => Error): Behaviour =>
  () => {
    throw error();
  };

/** Fails the first `times` attempts of every event (per uuid), then succeeds. */
export const failTimes =
  (times: number, error: () => Error): Behaviour =>
  (events, fake) => {
    if (events.some((e) => fake.attemptsOf(e.uuid) <= times)) throw error();
  };

/** Never settles on its own (a dead destination); `close()` rejects it unless told otherwise. */
export const hang: Behaviour = (_events, fake) => fake.hang();

/** A scriptable Destination that records every send. */
export class FakeDestination implements Destination {
  readonly name: string;
  readonly type = 'fake';
  behaviour: Behaviour;
  /** Every send, in call order. */
  readonly sends: { at: number; uuids: string[] }[] = [];
  /** uuids of successful sends, in order. */
  readonly delivered: string[] = [];
  /** Sends that have not settled yet. */
  inFlight = 0;
  closed = false;
  /** When false, `close()` leaves hanging sends pending (settle them with `settleHangs`). */
  rejectHangsOnClose = true;
  private readonly hangs = new Set<{ resolve: () => void; reject: (err: Error) => void }>();

  constructor(name: string, behaviour: Behaviour = succeed) {
    this.name = name;
    this.behaviour = behaviour;
  }

  /** Records as delivered what the behaviour does not fail, reject or report failed (PartialRejectionError). */
  async send(events: readonly FalcoEvent[]): Promise<void> {
    const uuids = events.map((e) => e.uuid);
    this.sends.push({ at: Date.now(), uuids });
    this.inFlight++;
    try {
      await this.behaviour(events, this);
    } catch (err) {
      if (err instanceof PartialRejectionError) {
        const notDelivered = new Set([
          ...err.rejected.map((r) => r.index),
          ...err.failed.flatMap((f) => f.indices),
        ]);
        this.delivered.push(...uuids.filter((_, i) => !notDelivered.has(i)));
      }
      throw err;
    } finally {
      this.inFlight--;
    }
    this.delivered.push(...uuids);
  }

  /** How many sends included this event. */
  attemptsOf(uuid: string): number {
    return this.sends.filter((s) => s.uuids.includes(uuid)).length;
  }

  /** Send times of one event. */
  attemptTimes(uuid: string): number[] {
    return this.sends.filter((s) => s.uuids.includes(uuid)).map((s) => s.at);
  }

  hang(): Promise<void> {
    return new Promise<void>((resolve, reject) => this.hangs.add({ resolve, reject }));
  }

  /** Settles every hanging send: success, or the given error. */
  settleHangs(error?: Error): void {
    for (const h of this.hangs) {
      if (error) h.reject(error);
      else h.resolve();
    }
    this.hangs.clear();
  }

  close(): Promise<void> {
    this.closed = true;
    if (this.rejectHangsOnClose) this.settleHangs(new Error('destination closed'));
    return Promise.resolve();
  }
}

/** A running engine with its fakes and metrics. */
export interface TestEngine {
  engine: DeliveryEngine;
  metrics: Metrics;
  dataDir: string;
  fakes: Record<string, FakeDestination>;
  close(): Promise<void>;
}

/** Starts a DeliveryEngine over `config` (every destination replaced by the fake of the same name). */
export function startEngine(
  config: EyrieConfig,
  fakes: Record<string, FakeDestination>,
  dataDir = config.storage.path,
  logger: Logger = silentLogger,
  options: { dedupMaxKeys?: number; shutdownProgressInterval?: number } = {},
): TestEngine {
  const metrics = new Metrics({ defaultMetrics: false });
  const engine = new DeliveryEngine({
    dataDir,
    delivery: config.delivery,
    destinations: config.destinations.map((c) => {
      const destination = fakes[c.name];
      if (!destination) throw new Error(`no fake for destination ${c.name}`);
      return { config: c, destination };
    }),
    metrics,
    logger,
    ...options,
  });
  let closed = false;
  return {
    engine,
    metrics,
    dataDir,
    fakes,
    close: async () => {
      if (closed) return;
      closed = true;
      await engine.close();
    },
  };
}

const configDirs = new Set<string>();

/** configFromYaml, remembering its temp dir (config file and data dir) for removeConfigDirs(). */
export function tempConfig(yaml: string): EyrieConfig {
  const config = configFromYaml(yaml);
  configDirs.add(dirname(config.storage.path));
  return config;
}

/** Removes the temp dirs of every tempConfig() so far (call once every engine is closed). */
export function removeConfigDirs(): void {
  for (const dir of configDirs) rmSync(dir, { recursive: true, force: true });
  configDirs.clear();
}

const eventCache = new Map<string, string[]>();

/** Raw JSON lines of realistic events with uuids (cached per count/seed). */
export function eventLines(count: number, seed = 1): string[] {
  const key = `${count}/${seed}`;
  let lines = eventCache.get(key);
  if (!lines) {
    lines = generateEvents(count, { seed, extra: ['--uuid'] });
    eventCache.set(key, lines);
  }
  return lines;
}

/** Realistic parsed events with uuids. */
export function makeEvents(count: number, seed = 1): FalcoEvent[] {
  return eventLines(count, seed).map((l) => parseFalcoEvent(l));
}

/** The sum of a metric's samples whose labels include `labels` (0 when none). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = new Map<string, string>();
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found.set(l[1]!, l[2]!);
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) total += Number(m[3]);
  }
  return total;
}

/** `eyrie_delivery_events_total` for one destination and outcome, summed over reasons unless one is given. */
export function deliveryEvents(text: string, destination: string, outcome: string, reason?: string): number {
  return metricValue(text, 'eyrie_delivery_events_total', {
    destination,
    outcome,
    ...(reason !== undefined ? { reason } : {}),
  });
}

/** Polls `check` every 10 ms until it holds; throws with `what()` after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs a query on a separate read connection to the data dir's database. */
export function query<T>(dataDir: string, sql: string, ...params: (string | number)[]): T[] {
  const db = openSqlite(join(dataDir, 'eyrie.db'), { fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** uuids queued (deliveries rows) for a destination, in queue order. */
export function queuedUuids(dataDir: string, destination: string): string[] {
  return query<{ uuid: string }>(
    dataDir,
    'SELECT e.uuid FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.destination = ? ORDER BY d.id',
    destination,
  ).map((r) => r.uuid);
}

export interface DeadLetterRow {
  id: number;
  uuid: string;
  attempts: number;
  reason: string;
  error: string;
  failed_at: number;
}

/** Dead letters of a destination, in order. */
export function deadLetterRows(dataDir: string, destination: string): DeadLetterRow[] {
  return query<DeadLetterRow>(
    dataDir,
    `SELECT d.id, e.uuid, d.attempts, d.reason, d.error, d.failed_at FROM dead_letters d JOIN events e ON e.id = d.event_id
     WHERE d.destination = ? ORDER BY d.id`,
    destination,
  );
}
