import type Database from 'better-sqlite3';
import { eventReleaser, openDatabase } from './journal.ts';

export interface DeadLetterSummary {
  destination: string;
  count: number;
  oldest: string;
  newest: string;
}

export interface DeadLetter {
  id: number;
  destination: string;
  uuid: string;
  rule: string;
  priority: string;
  failedAt: string;
  attempts: number;
  reason: string;
  error: string;
}

export interface DeadLetterDetail extends DeadLetter {
  /** The stored event as JSON text (exact numbers kept). */
  event: string;
}

export interface Selection {
  destination?: string;
  ids?: number[];
  /** Only dead letters of these destinations. */
  destinations?: readonly string[];
}

/** Rows a chunk of `eyrie dlq` and `eyrie queue` takes in one transaction. */
export const CHUNK = 1000;

/** A destination's queue caps (`queue.max_events`, `queue.max_bytes`; 0 = none). */
export interface QueueCaps {
  maxEvents: number;
  maxBytes: number;
}

export interface Fill {
  count: number;
  bytes: number;
}

/** How long a count of a queue near its cap stands in for counting it again. */
const RECOUNT_INTERVAL_MS = 1000;

/**
 * How full each destination's queue is, for a replay's chunks. Counting a queue scans its rows
 * (about 90 ms per million, inside a chunk's write lock, which a running Eyrie waits for), so a queue
 * is counted when a chunk first meets it and then estimated: plus the rows queued since (an index
 * range past the highest id seen), never minus those delivered. Near the cap, where rows the estimate
 * can miss (SQLite may reuse the highest id after a delete) could matter, it is counted again, at most
 * once a second: a queue that stays full keeps dead letters, as counting it at every chunk would. A
 * count stops past the cap's `max_events`.
 */
export class QueueRoom {
  private readonly known = new Map<string, Fill & { lastId: number }>();
  private readonly countedAt = new Map<string, number>();
  private readonly countAll;
  private readonly countUpTo;
  private readonly countSince;
  private readonly lastIdOf;

  constructor(db: Database.Database) {
    const fill = 'count(*) AS count, coalesce(sum(bytes), 0) AS bytes';
    this.countAll = db.prepare(`SELECT ${fill} FROM deliveries WHERE destination = ?`);
    this.countUpTo = db.prepare(
      `SELECT ${fill} FROM (SELECT bytes FROM deliveries WHERE destination = ? LIMIT ?)`,
    );
    this.countSince = db.prepare(`SELECT ${fill} FROM deliveries WHERE destination = ? AND id > ?`);
    this.lastIdOf = db.prepare('SELECT coalesce(max(id), 0) AS id FROM deliveries WHERE destination = ?');
  }

  /**
   * The queue's fill before a chunk of at most `margin` / 2 rows. `trusted` is false for an estimate
   * far from the cap, which a chunk that finds it full must replace with `count`.
   */
  fill(destination: string, cap: QueueCaps, margin: number): Fill & { trusted: boolean } {
    const known = this.known.get(destination);
    if (known !== undefined) {
      const since = this.countSince.get(destination, known.lastId) as Fill;
      const estimate = { count: known.count + since.count, bytes: known.bytes + since.bytes };
      const near =
        (cap.maxEvents > 0 && estimate.count + margin >= cap.maxEvents) ||
        (cap.maxBytes > 0 && estimate.bytes >= 0.9 * cap.maxBytes);
      const recent = performance.now() - (this.countedAt.get(destination) ?? -Infinity) < RECOUNT_INTERVAL_MS;
      if (!near || recent) return { ...estimate, trusted: near };
    }
    return { ...this.count(destination, cap), trusted: true };
  }

  /** Counts the queue: max_events + 1 rows at most, which say "full" as well as all of them would. */
  count(destination: string, cap: QueueCaps): Fill {
    this.countedAt.set(destination, performance.now());
    // The byte sum needs every row when max_bytes is the only cap.
    return (
      cap.maxEvents > 0 ? this.countUpTo.get(destination, cap.maxEvents + 1) : this.countAll.get(destination)
    ) as Fill;
  }

  /** After a chunk's inserts (in its transaction): what the queue holds, and its highest id. */
  settle(destination: string, fill: Fill): void {
    const lastId = (this.lastIdOf.get(destination) as { id: number }).id;
    this.known.set(destination, { ...fill, lastId });
  }
}

/**
 * One chunk's entries going onto capped queues (a replay's, a `queue move`'s): each destination's fill
 * is measured (QueueRoom) when the chunk first meets it, then kept up to date with what the chunk adds.
 * Destinations without caps take everything.
 */
export class ChunkRoom {
  private readonly room = new Map<string, { before: Fill & { trusted: boolean }; added: Fill }>();

  private readonly queues: QueueRoom;
  private readonly caps: ReadonlyMap<string, QueueCaps>;

  constructor(queues: QueueRoom, caps: ReadonlyMap<string, QueueCaps>) {
    this.queues = queues;
    this.caps = caps;
  }

  /** Whether an entry of `bytes` fits `destination`'s queue now; counted as added when it does. */
  admit(destination: string, bytes: number): 'fits' | 'full' | 'too large' {
    const cap = this.caps.get(destination);
    if (cap === undefined) return 'fits';
    // Never fits, however far the queue drains: said apart, and not in the way of the others.
    if (cap.maxBytes > 0 && bytes > cap.maxBytes) return 'too large';
    let queue = this.room.get(destination);
    if (queue === undefined) {
      queue = { before: this.queues.fill(destination, cap, 2 * CHUNK), added: { count: 0, bytes: 0 } };
      this.room.set(destination, queue);
    }
    const q = queue;
    const over = (): boolean =>
      (cap.maxEvents > 0 && q.before.count + q.added.count + 1 > cap.maxEvents) ||
      (cap.maxBytes > 0 && q.before.bytes + q.added.bytes + bytes > cap.maxBytes);
    if (over() && !q.before.trusted) q.before = { ...this.queues.count(destination, cap), trusted: true };
    if (over()) return 'full';
    q.added.count++;
    q.added.bytes += bytes;
    return 'fits';
  }

  /** After the chunk's writes (in its transaction): what each queue met holds now. */
  settle(): void {
    for (const [destination, { before, added }] of this.room)
      this.queues.settle(destination, {
        count: before.count + added.count,
        bytes: before.bytes + added.bytes,
      });
  }
}

export interface ReplayResult {
  replayed: number;
  /** Dead letters left where they are because their queue was at its cap, per destination. */
  kept: Map<string, number>;
  /** Dead letters left because each alone is larger than the queue's max_bytes, per destination. */
  tooLarge: Map<string, number>;
}

function where(selection: Selection): { sql: string; and: string; params: (string | number)[] } {
  const clauses: string[] = [];
  const params: (string | number)[] = [];
  if (selection.destination !== undefined) {
    clauses.push('d.destination = ?');
    params.push(selection.destination);
  }
  if (selection.ids !== undefined && selection.ids.length > 0) {
    clauses.push(`d.id IN (${selection.ids.map(() => '?').join(',')})`);
    params.push(...selection.ids);
  }
  if (selection.destinations !== undefined) {
    clauses.push(`d.destination IN (${selection.destinations.map(() => '?').join(',')})`);
    params.push(...selection.destinations);
  }
  const sql = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
  // `and` starts a clause of the caller's own: `${w.and} d.id > ?`.
  return { sql, and: sql === '' ? 'WHERE' : `${sql} AND`, params };
}

/**
 * Dead letters in Eyrie's database, for `eyrie dlq`. Safe while Eyrie runs: SQLite in WAL mode takes
 * writers one at a time, every change is one transaction, and the server re-reads queue depths.
 */
export class DeadLetters {
  readonly db: Database.Database;

  constructor(dataDir: string) {
    this.db = openDatabase(dataDir);
  }

  summary(): DeadLetterSummary[] {
    const rows = this.db
      .prepare(
        'SELECT destination, count(*) AS count, min(failed_at) AS oldest, max(failed_at) AS newest FROM dead_letters GROUP BY destination ORDER BY destination',
      )
      .all() as { destination: string; count: number; oldest: number; newest: number }[];
    return rows.map((r) => ({
      destination: r.destination,
      count: r.count,
      oldest: new Date(r.oldest).toISOString(),
      newest: new Date(r.newest).toISOString(),
    }));
  }

  /** Dead letters of the selection whose destination is not one of `known`, per destination. */
  outside(selection: Selection, known: readonly string[]): Map<string, number> {
    const w = where(selection);
    const rows = this.db
      .prepare(
        `SELECT d.destination, count(*) AS n FROM dead_letters d
         ${w.and} d.destination NOT IN (${known.map(() => '?').join(',')}) GROUP BY d.destination ORDER BY d.destination`,
      )
      .all(...w.params, ...known) as { destination: string; n: number }[];
    return new Map(rows.map((r) => [r.destination, r.n]));
  }

  list(selection: Selection, limit = 100): DeadLetter[] {
    return [...this.entries(selection, limit)];
  }

  /**
   * The dead letters in pages of 1,000 read as they are consumed: a listing of half a million holds a
   * page in memory, not all of them with their event bodies parsed. Each page is read whole, so no
   * statement (no read snapshot, which would stop a running Eyrie's WAL checkpoints) stays open while
   * the consumer waits, say for a slow `| less`.
   */
  *entries(selection: Selection, limit = 100): Generator<DeadLetter> {
    const w = where(selection);
    const page = this.db.prepare(
      `SELECT d.id, d.destination, d.failed_at, d.attempts, d.reason, d.error, e.uuid,
              coalesce(json_extract(e.body, '$.rule'), '') AS rule,
              coalesce(json_extract(e.body, '$.priority'), '') AS priority
       FROM dead_letters d JOIN events e ON e.id = d.event_id ${w.and} d.id > ? ORDER BY d.id LIMIT ?`,
    );
    let after = 0;
    for (let left = limit; left > 0;) {
      const rows = page.all(...w.params, after, Math.min(left, CHUNK)) as {
        id: number;
        destination: string;
        failed_at: number;
        attempts: number;
        reason: string;
        error: string;
        uuid: string;
        rule: unknown;
        priority: unknown;
      }[];
      for (const r of rows) {
        yield {
          id: r.id,
          destination: r.destination,
          uuid: r.uuid,
          rule: String(r.rule),
          priority: String(r.priority),
          failedAt: new Date(r.failed_at).toISOString(),
          attempts: r.attempts,
          reason: r.reason,
          error: r.error,
        };
      }
      if (rows.length < Math.min(left, CHUNK)) return;
      left -= rows.length;
      after = rows[rows.length - 1]!.id;
    }
  }

  show(id: number): DeadLetterDetail | undefined {
    const row = this.list({ ids: [id] }, 1)[0];
    if (!row) return undefined;
    const body = this.db
      .prepare('SELECT e.body FROM dead_letters d JOIN events e ON e.id = d.event_id WHERE d.id = ?')
      .get(id) as { body: string };
    return { ...row, event: body.body };
  }

  count(selection: Selection): number {
    const w = where(selection);
    return (
      this.db.prepare(`SELECT count(*) AS n FROM dead_letters d ${w.sql}`).get(...w.params) as { n: number }
    ).n;
  }

  /**
   * Puts dead letters back on their destination's queue, due now, with a fresh retry budget. Each
   * chunk moves rows in one transaction (insert delivery + delete dead letter), so a replay that is
   * interrupted or run twice never delivers an entry twice from the dead letters.
   *
   * With `caps`, a destination's queue is filled up to its cap and no further: the rest stay dead
   * letters, for another replay once it has drained. Beyond the cap, the running Eyrie would drop
   * the replayed entries (`drop_oldest`) or refuse new events (`drop_newest`). The room is measured
   * inside each chunk's transaction, so entries Eyrie queued meanwhile count (see QueueRoom).
   */
  replay(
    selection: Selection,
    progress: (done: number, total: number) => void = () => {},
    caps: ReadonlyMap<string, QueueCaps> = new Map(),
  ): ReplayResult {
    const kept = new Map<string, number>();
    const tooLarge = new Map<string, number>();
    const count = (map: Map<string, number>, destination: string) =>
      map.set(destination, (map.get(destination) ?? 0) + 1);
    const rowsOf = (placeholders: string) =>
      this.db.prepare(
        `SELECT id, destination, bytes FROM dead_letters WHERE id IN (${placeholders}) ORDER BY id`,
      );
    const queues = new QueueRoom(this.db);
    const replayed = this.inChunks(selection, progress, (ids) => {
      const now = Date.now();
      const rows = rowsOf(ids.map(() => '?').join(',')).all(...ids) as {
        id: number;
        destination: string;
        bytes: number;
      }[];
      const room = new ChunkRoom(queues, caps);
      const fits = rows.filter((row) => {
        const verdict = room.admit(row.destination, row.bytes);
        if (verdict === 'full') count(kept, row.destination);
        else if (verdict === 'too large') count(tooLarge, row.destination);
        return verdict === 'fits';
      });
      if (fits.length > 0) {
        const placeholders = fits.map(() => '?').join(',');
        const fitIds = fits.map((r) => r.id);
        this.db
          .prepare(
            `INSERT INTO deliveries (destination, event_id, bytes, enqueued_at, due_at)
             SELECT destination, event_id, bytes, ?, ? FROM dead_letters WHERE id IN (${placeholders}) ORDER BY id`,
          )
          .run(now, now, ...fitIds);
        this.db.prepare(`DELETE FROM dead_letters WHERE id IN (${placeholders})`).run(...fitIds);
      }
      room.settle();
      return fits.length;
    });
    return { replayed, kept, tooLarge };
  }

  /** Deletes dead letters (and events nothing else references). */
  purge(selection: Selection, progress: (done: number, total: number) => void = () => {}): number {
    const release = eventReleaser(this.db);
    return this.inChunks(selection, progress, (ids) => {
      const placeholders = ids.map(() => '?').join(',');
      const eventIds = this.db
        .prepare(`DELETE FROM dead_letters WHERE id IN (${placeholders}) RETURNING event_id`)
        .all(...ids) as { event_id: number }[];
      for (const { event_id } of eventIds) release(event_id);
      return ids.length;
    });
  }

  /** Ids of these that are no dead letter's. */
  missing(ids: readonly number[]): number[] {
    const has = this.db.prepare('SELECT 1 FROM dead_letters WHERE id = ?').pluck();
    return ids.filter((id) => has.get(id) === undefined);
  }

  private inChunks(
    selection: Selection,
    progress: (done: number, total: number) => void,
    /** Acts on one chunk in a transaction; returns how many dead letters it took. */
    apply: (ids: number[]) => number,
  ): number {
    // Only the dead letters there now: a running Eyrie may add more meanwhile (a replayed event that
    // fails again), and a replay must not chase them.
    return inChunks(this.db, { from: 'dead_letters d', ...where(selection) }, progress, apply);
  }

  close(): void {
    this.db.close();
  }
}

/**
 * Runs `apply` on the ids of the rows `rows` selects (`d` is the table's alias), in chunks of CHUNK,
 * each in one IMMEDIATE transaction, with a pause as long after it: a running Eyrie waits for a chunk
 * or two, not the whole run. Only the
 * rows there at the start (up to the highest id then): those added meanwhile are not chased. A row
 * the chunk leaves in place is not met again. Returns the sum of what `apply` returns.
 */
export function inChunks(
  db: Database.Database,
  rows: { from: string; sql: string; and: string; params: (string | number)[] },
  progress: (done: number, total: number) => void,
  apply: (ids: number[]) => number,
): number {
  const total = (
    db.prepare(`SELECT count(*) AS n FROM ${rows.from} ${rows.sql}`).get(...rows.params) as { n: number }
  ).n;
  const last = (
    db.prepare(`SELECT max(d.id) AS id FROM ${rows.from} ${rows.sql}`).get(...rows.params) as {
      id: number | null;
    }
  ).id;
  if (last === null) return 0;
  const next = db.prepare(
    `SELECT d.id FROM ${rows.from} ${rows.and} d.id > ? AND d.id <= ? ORDER BY d.id LIMIT ?`,
  );
  let done = 0;
  let taken = 0;
  let after = 0;
  // IMMEDIATE: the room a chunk measures must not change before it writes (see Journal.transaction).
  const chunk = db.transaction((ids: number[]) => apply(ids));
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const ids = (next.all(...rows.params, after, last, CHUNK) as { id: number }[]).map((r) => r.id);
    if (ids.length === 0) break;
    const started = performance.now();
    taken += chunk.immediate(ids);
    // A running Eyrie waiting for the write lock polls for it (SQLite's busy handler sleeps up to
    // 100 ms between tries): with chunks back to back it seldom finds it free, and its ingest and
    // deliveries stalled for seconds (3.5 s in a move of a million entries). Leaving the lock free as
    // long as the chunk held it lets it in within a few tries.
    Atomics.wait(pause, 0, 0, Math.max(1, performance.now() - started));
    after = ids[ids.length - 1]!;
    done += ids.length;
    progress(done, total);
  }
  return taken;
}
