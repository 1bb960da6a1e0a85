import { statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openSqlite } from '../store/sqlite.ts';
import { DataDirLock } from '../store/data-dir-lock.ts';
import { WAL_SIZE_LIMIT, WalCheckpointer } from '../store/wal-checkpointer.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { parseJson, stringifyJson } from '../event/json.ts';
import { makeDirectory, openPrivateFile } from '../util/directory.ts';
import { asError, errorCode } from '../util/error.ts';
import type {
  DeliveryQueue,
  GiveUp,
  GiveUpResult,
  OnQueueFull,
  Prefetcher,
  QueueDepth,
  QueueEntry,
} from './queue.ts';

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
  /**
   * Refuse new events while the file system of `dataDir` has fewer free bytes than this (default
   * FREE_SPACE_FLOOR; 0 = no floor), whatever `diskCap` says: see FREE_SPACE_FLOOR.
   */
  freeSpaceFloor?: number;
  /** Free and total bytes of the file system of `dataDir` (default: statfs); tests stand in a full disk. */
  diskSpace?: () => DiskSpace;
  /** Called after each commit with its duration (s) and size. */
  onCommit?: (seconds: number, events: number) => void;
  /** Called after a write transaction (a commit, a claim, acks) that took SLOW_WRITE_SECONDS or more. */
  onSlowWrite?: (seconds: number) => void;
  /**
   * Called when deferred acks/reschedules could not be written. Those entries stay leased and come
   * back when their lease expires (sent again: at least once).
   */
  onSettleError?: (err: Error, entries: number) => void;
  /** A background checkpoint failed, or the checkpoint thread is gone (checkpoints are inline again). */
  onCheckpointError?: (err: Error, fallback: boolean) => void;
}

/** What to append: an event and the durable destinations it is routed to. */
export interface JournalItem {
  event: FalcoEvent;
  destinations: readonly SqliteQueue[];
}

/**
 * Free bytes kept on the journal's file system. Claims, acks and checkpoints write too (WAL frames,
 * the database growing as a checkpoint copies them back), so a disk filled by ingest would leave
 * nothing able to drain the queues, and no way to accept events again, even after a restart (the
 * release of the leases at start is a write). Ingest stops short of it: the WAL up to its backstop
 * (16 MiB) plus as much room for the checkpoint that copies it back. On a file system smaller than
 * four times this, a quarter of it.
 */
export const FREE_SPACE_FLOOR = 32 * 1024 * 1024;

/** Bytes an unprivileged process may still write on a file system, and its size. */
export interface DiskSpace {
  free: number;
  size: number;
}

/** Why the journal refuses new events for want of space: its disk cap, or the free-space floor. */
export interface SpaceShortage {
  limit: 'disk_cap' | 'free_space';
  message: string;
}

/** Rows whose due time a step back of the wall clock shifts per turn of the event loop (a few ms: see docs/architecture.md). */
const CLOCK_SHIFT_CHUNK = 2000;
/** Wait before shifting again when the journal could not write. */
const CLOCK_SHIFT_RETRY_MS = 1000;

/** How long a write waits for the lock another connection (`eyrie dlq`, `eyrie queue`) holds. */
const BUSY_TIMEOUT_MS = 5000;
/**
 * The wait once a write has waited BUSY_TIMEOUT_MS in vain, until one gets the lock: the holder is
 * stuck (a CLI stopped with Ctrl-Z or SIGSTOP mid-transaction). Each wait blocks the event loop,
 * so at 5 s a write, back to back, /healthz and /metrics went unanswered and ingest took 20 s+.
 */
const BUSY_TIMEOUT_LOCKED_OUT_MS = 100;

/**
 * A write transaction this long (s) is reported (`onSlowWrite`). better-sqlite3 writes on the event
 * loop, so meanwhile no request is answered, /healthz included: a disk whose fsyncs stall (an
 * exhausted EBS burst, an NFS hiccup) held it 9 s in one inline checkpoint, and said nothing.
 */
export const SLOW_WRITE_SECONDS = 1;

/** The `leased` value of a row no claim holds. */
const UNLEASED = 0;

/** Thrown in the savepoint of SqliteQueue.dropOldestFor to undo drops that could not make room. */
class NoRoom extends Error {}

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

export const JOURNAL_FILE = 'eyrie.db';

/**
 * The journal's format, kept in the database header (PRAGMA user_version). 0: written before the
 * format was recorded, with these same tables (`leased` then held 1 for any lease, which the release
 * at open clears as it does a claim token), so it is taken as it is and stamped. Raise it, with the
 * migration from the one before in openDatabase, when a table or what a column means changes: an
 * earlier build refuses a journal of a format it does not know instead of misreading its rows.
 */
const JOURNAL_FORMAT = 1;

/**
 * Throws when the database holds tables but none of Eyrie's: another program's file, or one whose
 * first page came from another database (a WAL copied from elsewhere, which SQLite replays when its
 * own checksums hold). Creating Eyrie's tables beside them would start an empty journal over the
 * operator's data, silently.
 */
function refuseForeignTables(file: string): void {
  let tables: string[];
  // Read only: a connection that could write would, on closing, checkpoint that WAL into the file.
  let db: Database.Database | undefined;
  try {
    db = openSqlite(file, { readonly: true, fileMustExist: true });
    tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
  } catch {
    return; // no file yet, or unreadable: opening it for writing says why
  } finally {
    db?.close();
  }
  if (tables.length === 0 || tables.some((t) => EYRIE_TABLES.includes(t))) return;
  throw new Error(
    `it holds tables of another program (${tables.slice(0, 5).join(', ')}${tables.length > 5 ? ', …' : ''}), ` +
      "none of Eyrie's; if it is a copy or was restored with a -wal file from elsewhere, move the file " +
      '(and its -wal and -shm) aside and put the right one back, or point storage.path at an empty directory',
  );
}

const EYRIE_TABLES = ['events', 'deliveries', 'dead_letters'];

/** Per destination: entries queued, and dead letters, that no destination of this configuration reads. */
export interface Orphaned {
  queued: Map<string, number>;
  deadLetters: Map<string, number>;
}

function orphanedIn(db: Database.Database, known: ReadonlySet<string>): Orphaned {
  const count = (table: 'deliveries' | 'dead_letters') => {
    const rows = db
      .prepare(`SELECT destination, count(*) AS n FROM ${table} GROUP BY destination ORDER BY destination`)
      .all() as { destination: string; n: number }[];
    return new Map(rows.filter((r) => !known.has(r.destination)).map((r) => [r.destination, r.n]));
  };
  return { queued: count('deliveries'), deadLetters: count('dead_letters') };
}

/**
 * What a journal in `dataDir` holds when this configuration opens none (no destination is durable
 * any more: all removed, or made `memory`): every queued entry and dead letter there is orphaned, and
 * would otherwise be left without a word. Read only, so a memory-only setup still runs on a read-only
 * file system, and nothing is created. Undefined when there is no journal or it cannot be read.
 */
export function orphanedInUnopenedJournal(dataDir: string): Orphaned | undefined {
  let db: Database.Database | undefined;
  try {
    db = openSqlite(join(dataDir, JOURNAL_FILE), { readonly: true, fileMustExist: true });
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
    if (!EYRIE_TABLES.every((t) => tables.includes(t))) return undefined;
    return orphanedIn(db, new Set());
  } catch {
    return undefined; // no journal, or one that cannot be read here: nothing to say about it
  } finally {
    db?.close();
  }
}

/** The space of the file system holding `dir`. */
function diskSpaceOf(dir: string): DiskSpace {
  const st = statfsSync(dir);
  return { free: st.bavail * st.bsize, size: st.blocks * st.bsize };
}

/** Opens (creating if needed) Eyrie's SQLite database in WAL mode. Shared by the server and the dlq CLI. */
export function openDatabase(dataDir: string): Database.Database {
  const file = join(dataDir, JOURNAL_FILE);
  let db: Database.Database | undefined;
  try {
    makeDirectory(dataDir, 0o700);
    refuseForeignTables(file);
    // Created 0600 (SQLite gives its -wal and -shm the same mode), and refused when not writable.
    openPrivateFile(file);
    db = openSqlite(file);
    // exec, not pragma(): pragma() prepares a throw-away statement (see src/store/sqlite.ts).
    db.exec('PRAGMA journal_mode = WAL');
    // NORMAL in WAL survives a crash of the process (SIGKILL); only an OS crash can lose the last commits.
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // Every connection that writes (the server, `eyrie dlq`, `eyrie queue`) may be the one that
    // restarts the WAL: each cuts a WAL a long reader let grow back to this (see WAL_SIZE_LIMIT).
    db.exec(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT}`);
    const format = db.prepare('PRAGMA user_version').pluck().get() as number;
    if (format > JOURNAL_FORMAT) {
      throw new Error(
        `it was written by a newer version of Eyrie (journal format ${format}, this version reads up to ${JOURNAL_FORMAT}); ` +
          'run that version or a later one',
      );
    }
    db.exec(SCHEMA);
    if (format < JOURNAL_FORMAT) db.exec(`PRAGMA user_version = ${JOURNAL_FORMAT}`);
    return db;
  } catch (err) {
    db?.close();
    // SQLite's own messages ("file is not a database", "unable to open database file") name no file.
    throw new Error(`cannot open the journal ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Longest wait (ms) before acks and reschedules are written, when no other write transaction takes
 * them first. Sends complete one by one, each in its own turn of the event loop; waiting a few
 * milliseconds groups them (tens per transaction under load). It delays only the bookkeeping, not
 * any delivery: a crash in between sends those entries again.
 */
const SETTLE_DELAY_MS = 5;

function settleSize(op: Settle): number {
  return op.kind === 'ack' ? op.entries.length : op.rows.length;
}

/** Rebuilds a stored event (written by stringifyJson from a validated FalcoEvent). */
function storedEvent(body: string): FalcoEvent {
  return parseJson(body) as unknown as FalcoEvent;
}

/**
 * A worker's verdict on sent entries, written later in one group (see Journal.settle). Reschedules
 * carry the values of their attempt.
 */
type Settle =
  | { kind: 'ack'; queue: SqliteQueue; entries: readonly QueueEntry[] }
  | {
      kind: 'reschedule';
      queue: SqliteQueue;
      dueAt: number;
      /** SqliteQueue.clockStepCount when it was made: which wall clock `dueAt` is on. */
      clockStepCount: number;
      error: string;
      rows: { id: number; claim: number; attempts: number; firstAttemptAt: number }[];
    };

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
  readonly claimsAhead = true;
  readonly maxEvents: number;
  readonly maxBytes: number;
  readonly whenFull: 'drop_oldest' | 'drop_newest';
  private readonly journal: Journal;
  private readonly onDrop: OnQueueFull;
  /** Where the caps send what they turn away, when the destination has a fallback (see setOverflow). */
  private overflow: { queue: DeliveryQueue; handed: OnQueueFull } | undefined;
  /** Cached depth, kept by every write and resynced from the table (the dlq CLI writes too). */
  count = 0;
  bytes = 0;
  /** Cached like the depth: a count(*) per scrape took tens of ms per million dead letters. */
  private deadLetters = 0;
  private readonly eventIds = new Map<number, number>();

  constructor(
    journal: Journal,
    destination: string,
    caps: { maxEvents: number; maxBytes: number; whenFull: 'drop_oldest' | 'drop_newest' },
    onDrop: OnQueueFull,
  ) {
    this.journal = journal;
    this.destination = destination;
    this.maxEvents = caps.maxEvents;
    this.maxBytes = caps.maxBytes;
    this.whenFull = caps.whenFull;
    // Drops happen inside a write transaction: counted once it commits, not if it rolls back.
    this.onDrop = (reason, count) => journal.afterCommit(() => onDrop(reason, count));
    this.resync();
  }

  resync(): void {
    const row = this.journal.statements.depth.get(this.destination) as {
      count: number;
      bytes: number | null;
    };
    this.count = row.count;
    this.bytes = row.bytes ?? 0;
    this.deadLetters = (this.journal.statements.deadCount.get(this.destination) as { n: number }).n;
  }

  claim(now: number, max: number, maxBytes: number, lease: number, strictBytes = false): QueueEntry[] {
    const s = this.journal.statements;
    return this.journal.write(() => {
      // Stepped, not `.all()`: rows carry their bodies, and reading `max` of them before the byte
      // limit cuts the batch held them all at once (a file batch of 1,000 events of 200 KB: 200 MB
      // for a claim of 20). The statement must be done before the leases are written.
      const rows: ClaimRow[] = [];
      let size = 0;
      for (const row of s.claimDue.iterate(this.destination, now, max) as IterableIterator<ClaimRow>) {
        if ((rows.length > 0 || strictBytes) && maxBytes > 0 && size + row.bytes > maxBytes) break;
        size += row.bytes;
        rows.push(row);
      }
      const claim = this.journal.newClaim();
      const entries: QueueEntry[] = [];
      for (const row of rows) {
        s.lease.run(claim, now + lease, row.id);
        entries.push({
          id: row.id,
          claim,
          event: storedEvent(row.body),
          bytes: row.bytes,
          enqueuedAt: row.enqueued_at,
          attempts: row.attempts,
          firstAttemptAt: row.first_attempt_at ?? undefined,
        });
      }
      return entries;
    });
  }

  /**
   * Delivered. The delete is deferred and grouped with other settles (see Journal.settle): until it
   * commits the rows stay leased, so a crash meanwhile sends them again, never loses them.
   */
  ack(entries: readonly QueueEntry[]): void {
    if (entries.length > 0) this.journal.settle({ kind: 'ack', queue: this, entries });
  }

  /** Inside a write transaction: deletes delivered rows. */
  applyAck(entries: readonly QueueEntry[]): void {
    const s = this.journal.statements;
    for (const e of entries) {
      const row = s.deleteDelivery.get(e.id, e.claim) as { event_id: number } | undefined;
      if (!row) continue; // claimed again after its lease ran out, or purged meanwhile
      this.count--;
      this.bytes -= e.bytes;
      this.journal.release(row.event_id);
    }
    this.resyncIfStale();
  }

  /**
   * Rows the dlq CLI replayed while we run are not in the cached depth: acking them would drive it
   * below zero until the periodic resync. Re-read it at once instead.
   */
  private resyncIfStale(): void {
    if (this.count < 0 || this.bytes < 0) this.resync();
  }

  /** Failed, due again at `dueAt`. Deferred and grouped like ack(); the rows stay leased until then. */
  reschedule(entries: readonly QueueEntry[], dueAt: number, error: string, now: number): void {
    if (entries.length === 0) return;
    this.journal.settle({
      kind: 'reschedule',
      queue: this,
      dueAt,
      clockStepCount: this.clockStepCount,
      error: error.slice(0, 2000),
      // Copied now: the worker is done with these entries, but the values must be the ones of this attempt.
      rows: entries.map((e) => ({
        id: e.id,
        claim: e.claim,
        attempts: e.attempts,
        firstAttemptAt: e.firstAttemptAt ?? now,
      })),
    });
  }

  giveUp(items: readonly GiveUp[], fallback: DeliveryQueue | undefined, now: number): GiveUpResult {
    const s = this.journal.statements;
    let settled = 0;
    let dead = 0;
    this.journal.write(() => {
      for (const { entry, reason, error } of items) {
        const row = s.deleteDelivery.get(entry.id, entry.claim) as { event_id: number } | undefined;
        if (!row) continue; // claimed again after its lease ran out, or purged meanwhile
        settled++;
        this.count--;
        this.bytes -= entry.bytes;
        if (fallback) {
          this.handTo(fallback, row.event_id, entry.bytes, entry.enqueuedAt, now, entry.event);
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
          // Counted inside the transaction, as count and bytes are: should a settle written with it
          // fail, write() re-reads every count after the commit, this one included.
          this.deadLetters++;
        }
      }
    });
    this.resyncIfStale();
    return { settled, deadLetters: dead };
  }

  /**
   * Inside a write transaction: one of this queue's delivery rows, just deleted, goes to `fallback`.
   * A durable fallback queues the same event row (no copy of the body), within its own cap; a memory
   * one takes the event (`event`, or the id of its stored row).
   */
  private handTo(
    fallback: DeliveryQueue,
    eventId: number,
    bytes: number,
    enqueuedAt: number,
    now: number,
    event: FalcoEvent | number,
  ): void {
    if (fallback instanceof SqliteQueue) {
      const taker = fallback.placeFor(bytes, event, enqueuedAt, now);
      if (taker !== undefined) {
        taker.insertHandedOver(eventId, bytes, enqueuedAt, now);
        return;
      }
    } else {
      fallback.adopt(this.journal.eventOf(event), enqueuedAt, now);
    }
    this.journal.release(eventId);
  }

  adopt(event: FalcoEvent, enqueuedAt: number, now: number): void {
    // A new event for the journal, like an ingest commit: not into a file removed under it.
    this.journal.checkFiles();
    const s = this.journal.statements;
    const body = stringifyJson(event);
    const bytes = Buffer.byteLength(body);
    this.journal.write(() => {
      const taker = this.placeFor(bytes, event, enqueuedAt, now);
      if (taker === undefined) return;
      const eventId = Number(s.insertEvent.run(event.uuid, body, now, 1).lastInsertRowid);
      taker.insertHandedOver(eventId, bytes, enqueuedAt, now);
    });
  }

  setOverflow(fallback: DeliveryQueue, handed: OnQueueFull): void {
    // Counted once the transaction that hands them over commits, as drops are.
    this.overflow = {
      queue: fallback,
      handed: (reason, count) => this.journal.afterCommit(() => handed(reason, count)),
    };
  }

  /**
   * Inside a write transaction: the durable queue that takes a new entry of `bytes`. This one when
   * its cap leaves room (dropping its oldest entries for it, or handing them to the fallback, as
   * `when_full` says); else its fallback's, down the chain. Undefined when the entry is dropped
   * (counted) or went to a memory fallback (`event`, read only then: a number is its stored row's id).
   * `routed`: at ingest, the queues the event is routed to, which place it themselves.
   */
  placeFor(
    bytes: number,
    event: FalcoEvent | number,
    enqueuedAt: number,
    now: number,
    routed?: readonly SqliteQueue[],
  ): SqliteQueue | undefined {
    if (this.makeRoom(bytes, now)) return this;
    const overflow = this.overflow;
    if (overflow === undefined) {
      this.onDrop('queue_full_newest', 1);
      return undefined;
    }
    overflow.handed('queue_full_newest', 1);
    if (overflow.queue instanceof SqliteQueue) {
      // Routed the new event itself (`routed`, at ingest): placed, or turned away and counted, once there.
      if (routed?.includes(overflow.queue)) return undefined;
      return overflow.queue.placeFor(bytes, event, enqueuedAt, now, routed);
    }
    overflow.queue.adopt(this.journal.eventOf(event), enqueuedAt, now);
    return undefined;
  }

  /**
   * Inside a write transaction, room made: queues an event another destination gave up on, due now.
   * Queued since its ingest, not since the hand-over: latency and age count the time on the other queue.
   */
  insertHandedOver(eventId: number, bytes: number, enqueuedAt: number, now: number): void {
    this.journal.statements.insertDelivery.run(this.destination, eventId, bytes, enqueuedAt, now);
    this.count++;
    this.bytes += bytes;
  }

  clockStepped(step: number, before: number): void {
    if (step > 0) {
      // Forward: the leases not run out yet (a few: sends in flight, entries claimed ahead).
      const s = this.journal.statements;
      this.journal.write(() => s.shiftLeases.run(step, this.destination, before));
      return;
    }
    // Back: every due time to come, which includes the whole backlog queued since `before + step`.
    // A million rows take seconds to rewrite: done a chunk per turn of the event loop, oldest first,
    // so that ingest and the other destinations go on meanwhile. Leased rows are left alone (their
    // holders settle them), and so are the leases taken meanwhile, under the new time.
    this.clockStepCount++;
    this.clockSteps.push({
      step,
      now: before + step,
      dueAt: before + step,
      id: Number.MAX_SAFE_INTEGER,
      count: this.clockStepCount,
    });
    if (this.clockSteps.length === 1) this.shiftDueTimes();
  }

  /**
   * Steps back of the wall clock whose due times are being shifted, in turn (see clockStepped): the
   * shift, the wall clock after it, the (due_at, id) the next chunk starts after, and which step it is.
   */
  private clockSteps: { step: number; now: number; dueAt: number; id: number; count: number }[] = [];
  /** Steps back seen so far: a reschedule notes it, to tell which wall clock its due time is on. */
  private clockStepCount = 0;

  /**
   * Inside a write transaction: the due time to write for row `id`, rescheduled to `dueAt` on the wall
   * clock as it was after `stepsSeen` steps back, so that it ends up there once the shifts pending
   * have passed it. The shift goes by (due_at, id), not by which rows were there at the step: a due
   * time of the new clock ahead of its chunks would be shifted a second time (a retry due in 5
   * minutes, due at once), and one of the old clock behind them would not be shifted at all.
   */
  dueAtUnderShift(dueAt: number, stepsSeen: number, id: number): number {
    let due = dueAt;
    for (const shift of this.clockSteps) {
      const ahead = due > shift.dueAt || (due === shift.dueAt && id > shift.id);
      if (shift.count <= stepsSeen) {
        if (ahead) due -= shift.step; // on the new clock already: the shift takes it back there
      } else if (!ahead && due > shift.now) {
        due = Math.max(due + shift.step, shift.now); // on the old clock, where the shift has passed
      }
    }
    return due;
  }

  private shiftDueTimes(): void {
    const shift = this.clockSteps[0];
    if (shift === undefined || !this.journal.open) return;
    const s = this.journal.statements;
    const { step, now } = shift;
    try {
      this.journal.write(() => {
        // The last row of this chunk, as it is before the shift: the next chunk starts after it. A
        // shifted row's due time only decreases, so none comes back into a later chunk.
        const end = s.shiftChunkEnd.get(this.destination, shift.dueAt, shift.id, CLOCK_SHIFT_CHUNK - 1) as
          { due_at: number; id: number } | undefined;
        const last = end ?? { due_at: Number.MAX_SAFE_INTEGER, id: Number.MAX_SAFE_INTEGER };
        s.shiftDue.run(step, now, this.destination, shift.dueAt, shift.id, last.due_at, last.id);
        if (end === undefined) this.clockSteps.shift();
        else Object.assign(shift, { dueAt: end.due_at, id: end.id });
      });
    } catch {
      // The journal cannot write now: ingest commits and claims fail the same way, and report it
      // (503s, "cannot read the queue"). Try again later.
      setTimeout(() => this.shiftDueTimes(), CLOCK_SHIFT_RETRY_MS).unref();
      return;
    }
    this.prefetcher?.notify();
    if (this.clockSteps.length > 0) setImmediate(() => this.shiftDueTimes());
  }

  release(entries: readonly QueueEntry[]): void {
    if (entries.length === 0) return;
    const s = this.journal.statements;
    this.journal.write(() => {
      for (const e of entries) s.release.run(e.id, e.claim);
    });
  }

  private prefetcher: Prefetcher | undefined;
  /** During an append: entries inserted leased for the prefetcher, how many more it takes, the others. */
  private handoffs: QueueEntry[] = [];
  private handoffRoom = 0;
  private insertedDue = 0;

  setPrefetcher(prefetcher: Prefetcher): void {
    this.prefetcher = prefetcher;
  }

  /** Before an append transaction. */
  beginAppend(now: number): void {
    this.handoffs = [];
    this.insertedDue = 0;
    this.handoffRoom = this.prefetcher?.room(now) ?? 0;
  }

  /** After an append transaction: hands over what it inserted leased, or drops that on a rollback. */
  endAppend(committed: boolean, now: number): void {
    const handed = this.handoffs;
    const due = this.insertedDue;
    this.handoffs = [];
    this.handoffRoom = 0;
    this.insertedDue = 0;
    if (!committed || this.prefetcher === undefined) return;
    if (handed.length > 0) this.prefetcher.accept(handed, now + this.prefetcher.lease);
    if (due > 0) this.prefetcher.notify();
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
    return this.deadLetters;
  }

  /**
   * Inside a write transaction (see placeFor): applies the cap, and returns false when the new entry
   * of `bytes` must be turned away (the caller counts it).
   */
  private makeRoom(bytes: number, now: number): boolean {
    if (!this.full(bytes)) return true;
    // Larger than the whole byte cap: no drop could make room, and none is made.
    if (this.whenFull === 'drop_newest' || (this.maxBytes > 0 && bytes > this.maxBytes)) return false;
    return this.dropOldestFor(bytes, now);
  }

  /** True when one more entry of `bytes` would exceed a cap. */
  private full(bytes: number): boolean {
    return (
      (this.maxEvents > 0 && this.count + 1 > this.maxEvents) ||
      (this.maxBytes > 0 && this.bytes + bytes > this.maxBytes)
    );
  }

  /**
   * makeRoom for `drop_oldest`: drops the oldest entries not being sent (or hands them to the
   * fallback), or turns the new one away if that is not enough.
   */
  private dropOldestFor(bytes: number, now: number): boolean {
    const s = this.journal.statements;
    // Entries prefetched or handed over in this commit are leased but not being sent: unlease them so
    // they can be dropped like any other. (Should this transaction roll back, those taken back from
    // the workers stay leased, and come back when the lease expires.)
    const unsent = [...(this.prefetcher?.takeBack() ?? []), ...this.handoffs];
    for (const e of unsent) s.release.run(e.id, e.claim);
    this.insertedDue += this.handoffs.length;
    this.handoffs = [];
    this.handoffRoom = 0;
    const before = { count: this.count, bytes: this.bytes };
    let dropped = 0;
    // For the fallback, once room is sure to be made (the savepoint below may still undo the drops).
    const evicted: { event_id: number; bytes: number; enqueued_at: number }[] = [];
    const overflow = this.overflow;
    try {
      // A savepoint: when the entries in flight alone leave no room, the new entry is dropped and
      // the queued ones stay (dropping them would not have helped).
      this.journal.write(() => {
        while (this.full(bytes)) {
          const oldest = s.oldestUnleased.get(this.destination) as
            { id: number; event_id: number; bytes: number; enqueued_at: number } | undefined;
          if (!oldest) throw new NoRoom('the entries in flight fill the cap');
          s.deleteDelivery.get(oldest.id, UNLEASED);
          this.count--;
          this.bytes -= oldest.bytes;
          if (overflow) evicted.push(oldest);
          else this.journal.release(oldest.event_id);
          dropped++;
        }
      });
    } catch (err) {
      if (!(err instanceof NoRoom)) throw err;
      this.count = before.count;
      this.bytes = before.bytes;
      return false;
    }
    if (overflow) {
      for (const row of evicted)
        this.handTo(overflow.queue, row.event_id, row.bytes, row.enqueued_at, now, row.event_id);
      if (evicted.length > 0) overflow.handed('queue_full_oldest', evicted.length);
    } else if (dropped > 0) this.onDrop('queue_full_oldest', dropped);
    return true;
  }

  /**
   * Inside the append transaction. With `event` and a prefetcher ready for it, the row is inserted
   * leased and handed over after the commit (no claim needed); otherwise it is due now.
   */
  insert(eventId: number, bytes: number, now: number, event?: FalcoEvent): void {
    const s = this.journal.statements;
    if (event !== undefined && this.handoffRoom > 0) {
      this.handoffRoom--;
      const leaseUntil = now + this.prefetcher!.lease;
      const claim = this.journal.newClaim();
      const id = Number(
        s.insertLeased.run(this.destination, eventId, bytes, now, leaseUntil, claim).lastInsertRowid,
      );
      this.handoffs.push({
        id,
        claim,
        event,
        bytes,
        enqueuedAt: now,
        attempts: 0,
        firstAttemptAt: undefined,
      });
    } else {
      s.insertDelivery.run(this.destination, eventId, bytes, now, now);
      this.insertedDue++;
    }
    this.count++;
    this.bytes += bytes;
  }
}

/**
 * Inside a transaction: one reference (a delivery or dead letter deleted) to the event is gone; the
 * event row is deleted when none is left.
 */
function releaseEvent(s: Pick<ReturnType<typeof prepare>, 'deleteLastRef' | 'unref'>, eventId: number): void {
  // The last reference (the usual case: one destination): one statement instead of two.
  if (s.deleteLastRef.run(eventId).changes === 0) s.unref.run(eventId);
}

/** releaseEvent for another connection to the journal (the dlq and queue CLI). */
export function eventReleaser(db: Database.Database): (eventId: number) => void {
  const s = {
    deleteLastRef: db.prepare(DELETE_LAST_REF),
    unref: db.prepare(UNREF),
  };
  return (eventId) => releaseEvent(s, eventId);
}

const DELETE_LAST_REF = 'DELETE FROM events WHERE id = ? AND refs <= 1';
const UNREF = 'UPDATE events SET refs = refs - 1 WHERE id = ?';

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
    // Inserted already claimed (see SqliteQueue.insert).
    insertLeased: db.prepare(
      'INSERT INTO deliveries (destination, event_id, bytes, enqueued_at, due_at, leased) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    // `leased` holds the claim that leased the row (0: none). A leased row is due again at its lease
    // expiry: a crashed worker's entries come back by themselves. Settles name the claim they were
    // made under (see QueueEntry.claim): after a lease ran out and the row was claimed again (or its
    // id reused by SQLite once deleted), a late settle matches nothing.
    lease: db.prepare('UPDATE deliveries SET leased = ?, due_at = ? WHERE id = ?'),
    release: db.prepare('UPDATE deliveries SET leased = 0, due_at = 0 WHERE id = ? AND leased = ?'),
    // After a step of the wall clock (see SqliteQueue.clockStepped): back, the due times to come of
    // the rows not leased, a chunk of (due_at, id) at a time (those the step alone put in the future
    // are due now); forward, the leases not run out yet.
    shiftChunkEnd: db.prepare(
      'SELECT due_at, id FROM deliveries WHERE destination = ? AND leased = 0 AND (due_at, id) > (?, ?) ORDER BY due_at, id LIMIT 1 OFFSET ?',
    ),
    shiftDue: db.prepare(
      'UPDATE deliveries SET due_at = max(due_at + ?, ?) WHERE destination = ? AND leased = 0 AND (due_at, id) > (?, ?) AND (due_at, id) <= (?, ?)',
    ),
    shiftLeases: db.prepare(
      'UPDATE deliveries SET due_at = due_at + ? WHERE destination = ? AND due_at > ? AND leased != 0',
    ),
    releaseAll: db.prepare('UPDATE deliveries SET leased = 0, due_at = 0 WHERE leased != 0'),
    reschedule: db.prepare(
      'UPDATE deliveries SET leased = 0, due_at = ?, attempts = ?, first_attempt_at = ?, last_error = ? WHERE id = ? AND leased = ?',
    ),
    deleteDelivery: db.prepare('DELETE FROM deliveries WHERE id = ? AND leased = ? RETURNING event_id'),
    deleteLastRef: db.prepare(DELETE_LAST_REF),
    unref: db.prepare(UNREF),
    insertDeadLetter: db.prepare(
      'INSERT INTO dead_letters (destination, event_id, bytes, enqueued_at, failed_at, attempts, reason, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    nextDue: db.prepare('SELECT due_at FROM deliveries WHERE destination = ? ORDER BY due_at LIMIT 1'),
    oldest: db.prepare('SELECT enqueued_at FROM deliveries WHERE destination = ? ORDER BY id LIMIT 1'),
    oldestUnleased: db.prepare(
      'SELECT id, event_id, bytes, enqueued_at FROM deliveries WHERE destination = ? AND leased = 0 ORDER BY id LIMIT 1',
    ),
    eventBody: db.prepare('SELECT body FROM events WHERE id = ?').pluck(),
    depth: db.prepare('SELECT count(*) AS count, sum(bytes) AS bytes FROM deliveries WHERE destination = ?'),
    // Pages of the database as this connection sees it, WAL included, and those of them free.
    pageCount: db.prepare('PRAGMA page_count').pluck(),
    freePages: db.prepare('PRAGMA freelist_count').pluck(),
    deadCount: db.prepare('SELECT count(*) AS n FROM dead_letters WHERE destination = ?'),
    // Changes when another connection (the dlq CLI) commits: this connection's own writes leave it be.
    dataVersion: db.prepare('PRAGMA data_version').pluck(),
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

  /** False once closed. */
  get open(): boolean {
    return !this.closed;
  }

  private overCapReason: SpaceShortage | undefined;
  private lastCapCheck = 0;
  /**
   * Set while delivery results cannot be recorded (the last group of acks and reschedules failed on
   * its own, as when SQLite has nowhere to put its statement journal), for /healthz: ingest works,
   * but every delivered entry is sent again once its lease expires.
   */
  settleError: string | undefined;
  /** Set when the last commit failed, for /healthz. */
  lastError: string | undefined;
  /**
   * The database and WAL files as opened. Should one be removed or replaced while Eyrie runs (an
   * `rm -rf` of storage.path, a volume swapped under the pod), SQLite writes on into the unlinked
   * file, and every event answered 200 from then on would be gone at the next start.
   */
  private readonly files: { path: string; dev: number; ino: number }[];
  /** Set for good once a journal file is found removed or replaced: commits are refused until a restart. */
  private filesGone: string | undefined;
  /** Acks and reschedules not written yet, in the order they were made. */
  private settles: Settle[] = [];
  private settleTimer: NodeJS.Timeout | undefined;
  /**
   * Runs its argument in a transaction (a savepoint when one is open). Made once: better-sqlite3
   * builds a new wrapper on every `db.transaction()` call. IMMEDIATE takes the write lock at BEGIN,
   * waiting up to busy_timeout while `eyrie dlq` commits beside this process; a deferred one that
   * reads first (a claim) would fail with SQLITE_BUSY at its first write instead.
   */
  private readonly transaction: <T>(fn: () => T) => T;
  /** A write waited BUSY_TIMEOUT_MS for the lock in vain: writes wait briefly until one gets it. */
  private lockedOut = false;

  constructor(options: JournalOptions) {
    this.options = options;
    this.lock = new DataDirLock(options.dataDir);
    try {
      this.db = openDatabase(options.dataDir);
    } catch (err) {
      this.lock.release();
      throw err;
    }
    this.files = [JOURNAL_FILE, `${JOURNAL_FILE}-wal`].flatMap((name) => {
      const path = join(options.dataDir, name);
      const st = statSync(path, { throwIfNoEntry: false });
      return st === undefined ? [] : [{ path, dev: st.dev, ino: st.ino }];
    });
    try {
      this.statements = prepare(this.db);
    } catch (err) {
      this.db.close();
      this.lock.release();
      // CREATE TABLE IF NOT EXISTS keeps a table that lacks a column ("no such column: last_error").
      throw new Error(
        `the journal ${join(options.dataDir, JOURNAL_FILE)} does not have the tables this version of Eyrie uses (${(err as Error).message}): ` +
          'it was written by another version of Eyrie or by another program; run the version that wrote it, ' +
          'or move the file (and its -wal) aside to start with an empty journal',
        { cause: err },
      );
    }
    this.pageSize = this.db.prepare('PRAGMA page_size').pluck().get() as number;
    const transaction = this.db.transaction((fn: () => unknown) => fn());
    this.transaction = <T>(fn: () => T): T => transaction.immediate(fn) as T;
    // This process is the only consumer: whatever a previous run had leased is due again now.
    try {
      this.statements.releaseAll.run();
    } catch (err) {
      // A full disk after a crash: start anyway, answering 503 until writes work again, rather than
      // exit (senders would get connection refused, and memory destinations stop too). The old
      // leases run out by themselves; their tokens are never matched by this run's settles, which
      // name rows this run claimed.
      this.lastError = `cannot release the entries a previous run had leased: ${(err as Error).message}`;
    }
    this.checkpointer = new WalCheckpointer(this.db, {
      onError: (err) => options.onCheckpointError?.(err, false),
      onFallback: (err) => options.onCheckpointError?.(err, true),
    });
  }

  /** Resolves once the checkpoint thread runs (or has fallen back to inline checkpoints). */
  ready(): Promise<void> {
    return this.checkpointer.ready;
  }

  /** Checkpoints the WAL on its own thread, so that commits never wait for one (see WalCheckpointer). */
  private readonly checkpointer: WalCheckpointer;
  /** Held from open to close: one process per journal. */
  private readonly lock: DataDirLock;

  private readonly queues: SqliteQueue[] = [];

  queue(
    destination: string,
    caps: { maxEvents: number; maxBytes: number; whenFull: 'drop_oldest' | 'drop_newest' },
    onDrop: OnQueueFull,
  ): SqliteQueue {
    const queue = new SqliteQueue(this, destination, caps, onDrop);
    this.queues.push(queue);
    return queue;
  }

  /**
   * Entries queued, and dead letters, of destinations without a queue here (renamed, removed or made
   * memory-only since), per destination: kept, but no worker reads them and no gauge shows them.
   */
  orphanedEntries(): Orphaned {
    return orphanedIn(this.db, new Set(this.queues.map((q) => q.destination)));
  }

  /**
   * Re-reads the cached depths and dead-letter counts when another connection (the dlq CLI) has
   * committed since the last look; they are kept by this process's own writes otherwise. Reading
   * them is a scan (about 0.1 s per million queued entries), so not at every scrape.
   */
  refreshIfChangedElsewhere(): void {
    if (this.closed) return;
    const version = this.statements.dataVersion.get() as number;
    if (version === this.seenDataVersion) return;
    this.resync();
    // Only once the counts are read: a resync that throws (an I/O error) is tried again next time.
    this.seenDataVersion = version;
  }

  private seenDataVersion: number | undefined;

  /** Re-reads every queue's depth from the table (after a rollback, or writes by the dlq CLI). */
  resync(): void {
    // Settles pending are rows still in the table but no longer counted: write them first.
    this.flushSettles();
    this.resyncCounts();
  }

  private resyncCounts(): void {
    for (const q of this.queues) q.resync();
  }

  /**
   * Queues a worker's verdict (delivered, or due again later) for entries it holds leased. Settles
   * are written together, in one transaction: within SETTLE_DELAY_MS, or first thing in the next
   * write transaction (a claim, an ingest commit), whichever comes first. Until then the rows stay
   * leased, so no claim can take them, and a crash before the write leaves them to come back when
   * their lease expires (at the next start, at once): an entry is deleted only after its send
   * succeeded, and a lost write means a duplicate send, never a lost event.
   */
  settle(op: Settle): void {
    if (this.closed) return;
    this.settles.push(op);
    this.settleTimer ??= setTimeout(() => this.retrySettles(), SETTLE_DELAY_MS);
  }

  /** Writes the pending settles now (no-op when there are none). */
  flushSettles(): void {
    if (this.settles.length === 0 || this.closed) return;
    try {
      this.write(() => undefined);
    } catch {
      // Reported by write(); the settles were dropped or kept for the next write.
    }
  }

  /**
   * Runs `fn` in one write transaction, preceded by the pending settles. Settles that fail on their
   * own (in a savepoint) are dropped and reported: their rows stay leased until the lease expires.
   * When `fn` fails, everything rolls back and the settles wait for the next write.
   */
  write<T>(fn: () => T): T {
    if (this.db.inTransaction) return this.transaction(fn);
    const started = performance.now();
    const ops = this.settles;
    this.settles = [];
    let applied = false;
    let failed = false;
    let result: T;
    try {
      result = this.transaction(() => {
        if (ops.length > 0) {
          try {
            this.transaction(() => this.applySettles(ops));
            applied = true;
            this.settleError = undefined;
          } catch (err) {
            failed = true;
            this.settleError = (err as Error).message;
            this.options.onSettleError?.(
              err as Error,
              ops.reduce((n, op) => n + settleSize(op), 0),
            );
          }
        }
        return fn();
      });
    } catch (err) {
      this.committed = [];
      // Rolled back as a whole: the settles are still to be written.
      if (applied) this.settles = ops.concat(this.settles);
      this.resyncCounts();
      if (this.settles.length > 0)
        this.settleTimer ??= setTimeout(() => this.retrySettles(), SETTLE_DELAY_MS);
      if (errorCode(err) === 'SQLITE_BUSY' && !this.lockedOut) {
        this.lockedOut = true;
        this.db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_LOCKED_OUT_MS}`);
      }
      throw err;
    }
    if (this.lockedOut) {
      this.lockedOut = false;
      this.db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
    // The savepoint rolled back: the cached depths may count deletes that did not happen.
    if (failed) this.resyncCounts();
    const seconds = (performance.now() - started) / 1000;
    if (seconds >= SLOW_WRITE_SECONDS) this.options.onSlowWrite?.(seconds);
    this.checkpointer.notify();
    const committed = this.committed;
    this.committed = [];
    for (const fn of committed) fn();
    return result;
  }

  /** Runs `fn` once the current write transaction commits (at once outside one); never after a rollback. */
  afterCommit(fn: () => void): void {
    if (this.db.inTransaction) this.committed.push(fn);
    else fn();
  }

  private committed: (() => void)[] = [];

  private retrySettles(): void {
    this.settleTimer = undefined;
    this.flushSettles();
  }

  /** Inside a transaction. */
  private applySettles(ops: readonly Settle[]): void {
    const s = this.statements;
    for (const op of ops) {
      if (op.kind === 'ack') op.queue.applyAck(op.entries);
      else
        for (const r of op.rows)
          s.reschedule.run(
            op.queue.dueAtUnderShift(op.dueAt, op.clockStepCount, r.id),
            r.attempts,
            r.firstAttemptAt,
            op.error,
            r.id,
            r.claim,
          );
    }
  }

  /**
   * A new claim token. Unique while this process holds the journal: at open, every lease of an
   * earlier run was released, so no row still holds an old token.
   */
  newClaim(): number {
    return ++this.lastClaim;
  }

  private lastClaim = 0;

  /** The event itself, or the one stored under this id. */
  eventOf(event: FalcoEvent | number): FalcoEvent {
    return typeof event === 'number' ? storedEvent(this.statements.eventBody.get(event) as string) : event;
  }

  /** Inside a transaction: one reference to the event is gone; delete it when none is left. */
  release(eventId: number): void {
    releaseEvent(this.statements, eventId);
  }

  /** Resolves once the items are committed to disk; rejects with JournalUnavailableError otherwise. */
  append(items: JournalItem[]): Promise<void> {
    if (this.closed) return Promise.reject(new JournalUnavailableError('journal is closed (shutting down)'));
    if (items.length === 0) return Promise.resolve();
    try {
      this.checkDiskCap();
    } catch (err) {
      // A rejection, not a throw: the caller undoes what it did for these events (dedup keys) on one.
      return Promise.reject(asError(err));
    }
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

  /**
   * Settles with the commit of what is pending now: resolves once it is on disk, rejects as its
   * appends do. Undefined when nothing is pending.
   */
  whenPendingCommitted(): Promise<void> | undefined {
    if (this.pending.length === 0) return undefined;
    return new Promise<void>((resolve, reject) => this.pending.push({ items: [], resolve, reject }));
  }

  /**
   * Throws JournalUnavailableError while the journal's data is over its disk cap, or its file system
   * under FREE_SPACE_FLOOR (checked at most every 250 ms). The data is the pages in use, not the size
   * of the files: SQLite never shrinks them (pages freed by deliveries are reused), so a cap on file
   * sizes, once crossed by a backlog, would refuse every event for good even after the backlog drained.
   */
  checkDiskCap(): void {
    const over = this.overDiskCap();
    if (over !== undefined) throw new JournalUnavailableError(`journal is ${over.message}`);
  }

  /**
   * Why new events are refused, while the journal is over its disk cap or short of free space
   * (re-read at most every 250 ms); undefined otherwise.
   */
  overDiskCap(): SpaceShortage | undefined {
    const now = Date.now();
    if (now - this.lastCapCheck > 250) {
      this.lastCapCheck = now;
      this.overCapReason = this.capReason();
    }
    return this.overCapReason;
  }

  private capReason(): SpaceShortage | undefined {
    const { diskCap, freeSpaceFloor: floor = FREE_SPACE_FLOOR } = this.options;
    if (diskCap > 0 && this.usedBytes() > diskCap)
      return { limit: 'disk_cap', message: `over its disk cap of ${diskCap} bytes` };
    if (floor <= 0) return undefined;
    let space: DiskSpace;
    try {
      space = this.options.diskSpace?.() ?? diskSpaceOf(this.options.dataDir);
    } catch {
      return undefined; // a file system that cannot tell: the writes themselves will say
    }
    // On a small file system (a tmpfs of 40 MiB) the whole floor would refuse every event, for good:
    // a quarter of it is kept free there. One that reports no size (0: some FUSE ones) cannot tell.
    const freeSpaceFloor = Math.min(floor, Math.floor(space.size / 4));
    if (freeSpaceFloor <= 0) return undefined;
    let free = space.free;
    // Pages freed by deliveries are reused before the file grows: room too, though the disk does not show it.
    free += (this.statements.freePages.get() as number) * this.pageSize;
    if (free >= freeSpaceFloor) return undefined;
    return {
      limit: 'free_space',
      message: `short of disk space: ${free} bytes free in ${this.options.dataDir}, under the ${freeSpaceFloor} bytes kept free so deliveries can go on`,
    };
  }

  /** `delivery.disk_cap` (bytes; 0: none). */
  get diskCap(): number {
    return this.options.diskCap;
  }

  /** Bytes of the pages in use (events, queues, dead letters, indexes), wherever they are now. */
  usedBytes(): number {
    const s = this.statements;
    return ((s.pageCount.get() as number) - (s.freePages.get() as number)) * this.pageSize;
  }

  private readonly pageSize: number;

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
    for (const q of this.queues) q.beginAppend(now);
    let committed = false;
    try {
      this.checkFiles();
      this.write(() => {
        for (const { items } of batch) {
          for (const { event, destinations } of items) {
            const body = stringifyJson(event);
            const bytes = Buffer.byteLength(body);
            let accepted: SqliteQueue[] | undefined;
            for (const q of destinations) {
              const taker = q.placeFor(bytes, event, now, now, destinations);
              // A full queue's fallback may be routed the event as well: one delivery row is enough.
              if (taker !== undefined && !accepted?.includes(taker)) (accepted ??= []).push(taker);
            }
            if (accepted === undefined) continue;
            const eventId = Number(s.insertEvent.run(event.uuid, body, now, accepted.length).lastInsertRowid);
            for (const q of accepted) q.insert(eventId, bytes, now, event);
          }
        }
      });
      committed = true;
    } catch (err) {
      this.lastError = (err as Error).message;
      // write() has re-read the cached depths, which may have counted rows the rollback removed.
      const failure = new JournalUnavailableError(`cannot write the journal: ${(err as Error).message}`, {
        cause: err,
      });
      for (const p of batch) p.reject(failure);
      return;
    } finally {
      for (const q of this.queues) q.endAppend(committed, now);
    }
    this.lastError = undefined;
    this.options.onCommit?.(Number(process.hrtime.bigint() - started) / 1e9, count);
    for (const p of batch) p.resolve();
  }

  /**
   * Throws while a journal file is not the one opened (see `files`): two stats per commit (about 5 µs,
   * shared by the commit's events).
   */
  checkFiles(): void {
    if (this.filesGone === undefined) {
      for (const { path, dev, ino } of this.files) {
        const st = statSync(path, { throwIfNoEntry: false });
        if (st?.ino === ino && st.dev === dev) continue;
        this.filesGone =
          `${path} was ${st === undefined ? 'removed' : 'replaced'} while Eyrie was running: ` +
          'nothing written now would be there after a restart; restart Eyrie to journal in new files ' +
          '(what was queued before is delivered from the open file until then)';
        break;
      }
    }
    if (this.filesGone !== undefined) throw new Error(this.filesGone);
  }

  /** Commits what is pending and closes; resolves once the checkpoint thread has closed its connection too. */
  close(): Promise<void> {
    if (!this.closed) {
      this.flush();
      this.flushSettles();
      clearTimeout(this.settleTimer);
      this.settleTimer = undefined;
      this.closed = true;
      this.db.close();
    }
    return this.checkpointer.stop().finally(() => this.lock.release());
  }
}
