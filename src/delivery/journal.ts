import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openSqlite } from '../store/sqlite.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { parseJson, stringifyJson } from '../event/json.ts';
import type { DeliveryQueue, GiveUp, QueueDepth, QueueEntry } from './queue.ts';

/** Ingest could not persist: answered 503, never 200. */
export class JournalUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'JournalUnavailableError';
  }
}

export interface JournalOptions {
  dataDir: string;
  /** Longest wait (ms) before a group commit. */
  commitInterval: number;
  /** Commit at once when this many events are pending. */
  commitMaxEvents: number;
  /** Refuse new events when the database grows past this many bytes (0 = no cap). */
  diskCap: number;
  /** Called after each commit with its duration (s) and size. */
  onCommit?: (seconds: number, events: number) => void;
}

/** What to append: an event and the durable destinations it is routed to. */
export interface JournalItem {
  event: FalcoEvent;
  destinations: readonly JournalTarget[];
}

/** A durable destination's side of an append: cap handling happens inside the commit. */
export interface JournalTarget {
  queue: SqliteQueue;
  /** Called with the number of entries dropped for the queue cap. */
  onDrop: (reason: 'queue_full_newest' | 'queue_full_oldest', count: number) => void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY,
  uuid TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  refs INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY,
  destination TEXT NOT NULL,
  event_id INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  enqueued_at INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  leased INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  first_attempt_at INTEGER,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (destination, due_at);
CREATE INDEX IF NOT EXISTS deliveries_order ON deliveries (destination, id);
CREATE TABLE IF NOT EXISTS dead_letters (
  id INTEGER PRIMARY KEY,
  destination TEXT NOT NULL,
  event_id INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  enqueued_at INTEGER NOT NULL,
  failed_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  reason TEXT NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_destination ON dead_letters (destination, id);
`;

/** Opens (creating if needed) Eyrie's SQLite database in WAL mode. Shared by the server and the dlq CLI. */
export function openDatabase(dataDir: string): Database.Database {
  mkdirSync(dataDir, { recursive: true });
  const db = openSqlite(join(dataDir, 'eyrie.db'));
  // exec, not pragma(): pragma() prepares a throw-away statement (see src/store/sqlite.ts).
  db.exec('PRAGMA journal_mode = WAL');
  // NORMAL in WAL survives a crash of the process (SIGKILL); only an OS crash can lose the last commits.
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('PRAGMA busy_timeout = 5000');
  db.exec(SCHEMA);
  return db;
}

export function databaseBytes(dataDir: string): number {
  let total = 0;
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      total += statSync(join(dataDir, `eyrie.db${suffix}`)).size;
    } catch {
      // not there yet
    }
  }
  return total;
}

/** Rebuilds a stored event (written by stringifyJson from a validated FalcoEvent). */
function storedEvent(body: string): FalcoEvent {
  return parseJson(body) as unknown as FalcoEvent;
}

interface ClaimRow {
  id: number;
  bytes: number;
  enqueued_at: number;
  attempts: number;
  first_attempt_at: number | null;
  body: string;
}

/** One destination's durable queue: rows of `deliveries` referencing shared `events` rows. */
export class SqliteQueue implements DeliveryQueue {
  readonly destination: string;
  readonly maxEvents: number;
  readonly maxBytes: number;
  readonly whenFull: 'drop_oldest' | 'drop_newest';
  private readonly journal: Journal;
  /** Cached depth, kept by every write and resynced from the table (the dlq CLI writes too). */
  count = 0;
  bytes = 0;
  private readonly eventIds = new Map<number, number>();

  constructor(
    journal: Journal,
    destination: string,
    caps: { maxEvents: number; maxBytes: number; whenFull: 'drop_oldest' | 'drop_newest' },
  ) {
    this.journal = journal;
    this.destination = destination;
    this.maxEvents = caps.maxEvents;
    this.maxBytes = caps.maxBytes;
    this.whenFull = caps.whenFull;
    this.resync();
  }

  resync(): void {
    const row = this.journal.statements.depth.get(this.destination) as {
      count: number;
      bytes: number | null;
    };
    this.count = row.count;
    this.bytes = row.bytes ?? 0;
  }

  claim(now: number, max: number, maxBytes: number, lease: number): QueueEntry[] {
    const s = this.journal.statements;
    return this.journal.db.transaction(() => {
      const rows = s.claimDue.all(this.destination, now, max) as ClaimRow[];
      const entries: QueueEntry[] = [];
      let size = 0;
      for (const row of rows) {
        if (entries.length > 0 && maxBytes > 0 && size + row.bytes > maxBytes) break;
        size += row.bytes;
        s.lease.run(now + lease, row.id);
        entries.push({
          id: row.id,
          event: storedEvent(row.body),
          bytes: row.bytes,
          enqueuedAt: row.enqueued_at,
          attempts: row.attempts,
          firstAttemptAt: row.first_attempt_at ?? undefined,
        });
      }
      return entries;
    })();
  }

  ack(entries: readonly QueueEntry[]): void {
    const s = this.journal.statements;
    this.journal.db.transaction(() => {
      for (const e of entries) {
        const row = s.deleteDelivery.get(e.id) as { event_id: number } | undefined;
        if (!row) continue; // purged meanwhile
        this.count--;
        this.bytes -= e.bytes;
        this.journal.release(row.event_id);
      }
    })();
    this.resyncIfStale();
  }

  /**
   * Rows the dlq CLI replayed while we run are not in the cached depth: acking them would drive it
   * below zero until the periodic resync. Re-read it at once instead.
   */
  private resyncIfStale(): void {
    if (this.count < 0 || this.bytes < 0) this.resync();
  }

  reschedule(entries: readonly QueueEntry[], dueAt: number, error: string, now: number): void {
    const s = this.journal.statements;
    this.journal.db.transaction(() => {
      for (const e of entries)
        s.reschedule.run(dueAt, e.attempts, e.firstAttemptAt ?? now, error.slice(0, 2000), e.id);
    })();
  }

  giveUp(items: readonly GiveUp[], fallback: DeliveryQueue | undefined, now: number): number {
    const s = this.journal.statements;
    let dead = 0;
    this.journal.db.transaction(() => {
      for (const { entry, reason, error } of items) {
        const row = s.deleteDelivery.get(entry.id) as { event_id: number } | undefined;
        if (!row) continue;
        this.count--;
        this.bytes -= entry.bytes;
        if (fallback instanceof SqliteQueue) {
          // Same event row, one more delivery row: no copy of the body.
          s.insertDelivery.run(fallback.destination, row.event_id, entry.bytes, now, now);
          fallback.count++;
          fallback.bytes += entry.bytes;
        } else if (fallback) {
          fallback.adopt(entry.event, now);
          this.journal.release(row.event_id);
        } else {
          s.insertDeadLetter.run(
            this.destination,
            row.event_id,
            entry.bytes,
            entry.enqueuedAt,
            now,
            entry.attempts,
            reason,
            error.slice(0, 2000),
          );
          dead++;
        }
      }
    })();
    this.resyncIfStale();
    return dead;
  }

  adopt(event: FalcoEvent, now: number): void {
    const s = this.journal.statements;
    const body = stringifyJson(event);
    const bytes = Buffer.byteLength(body);
    this.journal.db.transaction(() => {
      const eventId = Number(s.insertEvent.run(event.uuid, body, now, 1).lastInsertRowid);
      this.insert(eventId, bytes, now);
    })();
  }

  release(entries: readonly QueueEntry[]): void {
    const s = this.journal.statements;
    this.journal.db.transaction(() => {
      for (const e of entries) s.release.run(e.id);
    })();
  }

  nextDueAt(): number | undefined {
    const row = this.journal.statements.nextDue.get(this.destination) as { due_at: number } | undefined;
    return row?.due_at;
  }

  depth(): QueueDepth {
    const row = this.journal.statements.oldest.get(this.destination) as { enqueued_at: number } | undefined;
    return { count: this.count, bytes: this.bytes, oldestEnqueuedAt: row?.enqueued_at };
  }

  deadLetterCount(): number {
    return (this.journal.statements.deadCount.get(this.destination) as { n: number }).n;
  }

  /** Inside the append transaction: applies the cap, returns false when the new entry must be dropped. */
  makeRoom(bytes: number, onDrop: JournalTarget['onDrop']): boolean {
    const overCount = () => this.maxEvents > 0 && this.count + 1 > this.maxEvents;
    const overBytes = () => this.maxBytes > 0 && this.bytes + bytes > this.maxBytes;
    if (!overCount() && !overBytes()) return true;
    if (this.whenFull === 'drop_newest') {
      onDrop('queue_full_newest', 1);
      return false;
    }
    const s = this.journal.statements;
    let dropped = 0;
    while ((overCount() || overBytes()) && this.count > 0) {
      const oldest = s.oldestUnleased.get(this.destination) as
        { id: number; event_id: number; bytes: number } | undefined;
      if (!oldest) break;
      s.deleteDelivery.get(oldest.id);
      this.count--;
      this.bytes -= oldest.bytes;
      this.journal.release(oldest.event_id);
      dropped++;
    }
    if (dropped > 0) onDrop('queue_full_oldest', dropped);
    if (overCount() || overBytes()) {
      // Everything left is in flight: the newest has to go.
      onDrop('queue_full_newest', 1);
      return false;
    }
    return true;
  }

  /** Inside the append transaction. */
  insert(eventId: number, bytes: number, now: number): void {
    this.journal.statements.insertDelivery.run(this.destination, eventId, bytes, now, now);
    this.count++;
    this.bytes += bytes;
  }
}

function prepare(db: Database.Database) {
  return {
    insertEvent: db.prepare('INSERT INTO events (uuid, body, received_at, refs) VALUES (?, ?, ?, ?)'),
    insertDelivery: db.prepare(
      'INSERT INTO deliveries (destination, event_id, bytes, enqueued_at, due_at) VALUES (?, ?, ?, ?, ?)',
    ),
    claimDue: db.prepare(
      `SELECT d.id, d.bytes, d.enqueued_at, d.attempts, d.first_attempt_at, e.body
       FROM deliveries d JOIN events e ON e.id = d.event_id
       WHERE d.destination = ? AND d.due_at <= ? ORDER BY d.due_at, d.id LIMIT ?`,
    ),
    // A leased row is due again at its lease expiry: a crashed worker's entries come back by themselves.
    lease: db.prepare('UPDATE deliveries SET leased = 1, due_at = ? WHERE id = ?'),
    release: db.prepare('UPDATE deliveries SET leased = 0, due_at = 0 WHERE id = ?'),
    releaseAll: db.prepare('UPDATE deliveries SET leased = 0, due_at = 0 WHERE leased = 1'),
    reschedule: db.prepare(
      'UPDATE deliveries SET leased = 0, due_at = ?, attempts = ?, first_attempt_at = ?, last_error = ? WHERE id = ?',
    ),
    deleteDelivery: db.prepare('DELETE FROM deliveries WHERE id = ? RETURNING event_id'),
    unref: db.prepare('UPDATE events SET refs = refs - 1 WHERE id = ? RETURNING refs'),
    deleteEvent: db.prepare('DELETE FROM events WHERE id = ?'),
    insertDeadLetter: db.prepare(
      'INSERT INTO dead_letters (destination, event_id, bytes, enqueued_at, failed_at, attempts, reason, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    nextDue: db.prepare('SELECT due_at FROM deliveries WHERE destination = ? ORDER BY due_at LIMIT 1'),
    oldest: db.prepare('SELECT enqueued_at FROM deliveries WHERE destination = ? ORDER BY id LIMIT 1'),
    oldestUnleased: db.prepare(
      'SELECT id, event_id, bytes FROM deliveries WHERE destination = ? AND leased = 0 ORDER BY id LIMIT 1',
    ),
    depth: db.prepare('SELECT count(*) AS count, sum(bytes) AS bytes FROM deliveries WHERE destination = ?'),
    deadCount: db.prepare('SELECT count(*) AS n FROM dead_letters WHERE destination = ?'),
  };
}

/**
 * The durable journal: accepted events and their per-destination deliveries, committed in groups
 * (every `commitInterval` ms or `commitMaxEvents` events) before ingest answers.
 */
export class Journal {
  readonly db: Database.Database;
  readonly statements: ReturnType<typeof prepare>;
  private readonly options: JournalOptions;
  private pending: { items: JournalItem[]; resolve: () => void; reject: (err: Error) => void }[] = [];
  private pendingCount = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;
  private overCapSince: number | undefined;
  private lastCapCheck = 0;
  /** Set when the last commit failed, for /healthz. */
  lastError: string | undefined;

  constructor(options: JournalOptions) {
    this.options = options;
    this.db = openDatabase(options.dataDir);
    this.statements = prepare(this.db);
    // This process is the only consumer: whatever a previous run had leased is due again now.
    this.statements.releaseAll.run();
  }

  private readonly queues: SqliteQueue[] = [];

  queue(
    destination: string,
    caps: { maxEvents: number; maxBytes: number; whenFull: 'drop_oldest' | 'drop_newest' },
  ): SqliteQueue {
    const queue = new SqliteQueue(this, destination, caps);
    this.queues.push(queue);
    return queue;
  }

  /** Re-reads every queue's depth from the table (after a rollback, or writes by the dlq CLI). */
  resync(): void {
    for (const q of this.queues) q.resync();
  }

  /** Inside a transaction: one reference to the event is gone; delete it when none is left. */
  release(eventId: number): void {
    const row = this.statements.unref.get(eventId) as { refs: number } | undefined;
    if (row && row.refs <= 0) this.statements.deleteEvent.run(eventId);
  }

  /** Resolves once the items are committed to disk; rejects with JournalUnavailableError otherwise. */
  append(items: JournalItem[]): Promise<void> {
    if (this.closed) return Promise.reject(new JournalUnavailableError('journal is closed (shutting down)'));
    if (items.length === 0) return Promise.resolve();
    this.checkDiskCap();
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ items, resolve, reject });
      this.pendingCount += items.length;
      if (this.pendingCount >= this.options.commitMaxEvents) this.flush();
      // 0: commit once this turn of the event loop has read every request that was ready — under load
      // that groups as many events as a timer would, without the added wait.
      else if (this.options.commitInterval === 0) this.immediate ??= setImmediate(() => this.flush());
      else this.timer ??= setTimeout(() => this.flush(), this.options.commitInterval);
    });
  }

  /** Throws JournalUnavailableError while the database is over its disk cap (checked at most every 250 ms). */
  checkDiskCap(): void {
    if (this.options.diskCap <= 0) return;
    const now = Date.now();
    if (now - this.lastCapCheck > 250) {
      this.lastCapCheck = now;
      this.overCapSince =
        databaseBytes(this.options.dataDir) > this.options.diskCap ? (this.overCapSince ?? now) : undefined;
    }
    if (this.overCapSince !== undefined) {
      throw new JournalUnavailableError(`journal is over its disk cap of ${this.options.diskCap} bytes`);
    }
  }

  /** Commits everything pending now. */
  flush(): void {
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = undefined;
    }
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    const count = this.pendingCount;
    this.pendingCount = 0;
    const started = process.hrtime.bigint();
    const now = Date.now();
    const s = this.statements;
    try {
      this.db.transaction(() => {
        for (const { items } of batch) {
          for (const { event, destinations } of items) {
            const body = stringifyJson(event);
            const bytes = Buffer.byteLength(body);
            const accepted = destinations.filter((t) => t.queue.makeRoom(bytes, t.onDrop));
            if (accepted.length === 0) continue;
            const eventId = Number(s.insertEvent.run(event.uuid, body, now, accepted.length).lastInsertRowid);
            for (const t of accepted) t.queue.insert(eventId, bytes, now);
          }
        }
      })();
    } catch (err) {
      this.lastError = (err as Error).message;
      // The cached depths may count rows the rollback removed.
      this.resync();
      const failure = new JournalUnavailableError(`cannot write the journal: ${(err as Error).message}`, {
        cause: err,
      });
      for (const p of batch) p.reject(failure);
      return;
    }
    this.lastError = undefined;
    this.options.onCommit?.(Number(process.hrtime.bigint() - started) / 1e9, count);
    for (const p of batch) p.resolve();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
  }
}
