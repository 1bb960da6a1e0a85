import type Database from 'better-sqlite3';
import { eventReleaser, openDatabase } from './journal.ts';
import { ChunkRoom, inChunks, QueueRoom, type QueueCaps } from './dead-letters.ts';
import { dataDirInUse } from '../store/data-dir-lock.ts';

export interface QueueSummary {
  destination: string;
  count: number;
  bytes: number;
  /** When the oldest entry was queued (ISO 8601). */
  oldest: string;
  /** Entries leased: being sent now by a running Eyrie (left by one that ended otherwise). */
  leased: number;
}

/** A line of `eyrie queue list`: a destination with its queue, or a durable one with nothing queued. */
export interface QueueListing extends Omit<QueueSummary, 'oldest'> {
  oldest: string | null;
  /** Whether the config has a durable queue for it; null without a config. */
  durable: boolean | null;
}

export interface PurgeResult {
  purged: number;
  /** Entries left because a running Eyrie is sending them. */
  leased: number;
}

export interface MoveResult {
  moved: number;
  /** Entries of the old destination whose event was queued for the new one already: deleted. */
  duplicates: number;
  /** Entries left because a running Eyrie is sending them. */
  leased: number;
  /** Entries left because the new destination's queue is at its cap. */
  kept: number;
  /** Entries left because each alone is larger than the new destination's queue.max_bytes. */
  tooLarge: number;
}

interface Row {
  id: number;
  event_id: number;
  bytes: number;
  leased: number;
}

/**
 * Queued entries in Eyrie's database, for `eyrie queue`: above all those of destinations the config
 * no longer has (renamed, removed, made memory-only), which no worker reads. Safe while Eyrie runs, as
 * `eyrie dlq` is (see DeadLetters): one transaction per chunk, and the server re-reads queue depths.
 * Entries a running Eyrie holds leased are being sent: never purged nor moved.
 */
export class QueuedEntries {
  readonly db: Database.Database;
  private readonly dataDir: string;

  constructor(dataDir: string) {
    this.db = openDatabase(dataDir);
    this.dataDir = dataDir;
  }

  summary(): QueueSummary[] {
    const rows = this.db
      .prepare(
        `SELECT destination, count(*) AS count, coalesce(sum(bytes), 0) AS bytes, min(enqueued_at) AS oldest,
                sum(leased != 0) AS leased
         FROM deliveries GROUP BY destination ORDER BY destination`,
      )
      .all() as { destination: string; count: number; bytes: number; oldest: number; leased: number }[];
    return rows.map((r) => ({ ...r, oldest: new Date(r.oldest).toISOString() }));
  }

  count(destination: string): number {
    return (
      this.db.prepare('SELECT count(*) AS n FROM deliveries WHERE destination = ?').get(destination) as {
        n: number;
      }
    ).n;
  }

  /** Deletes the entries queued for `destination` (and the events nothing references any more). */
  purge(destination: string, progress: (done: number, total: number) => void = () => {}): PurgeResult {
    const release = eventReleaser(this.db);
    let leased = 0;
    const purged = this.inChunks(destination, progress, (rows) => {
      const free = rows.filter((r) => r.leased === 0);
      leased += rows.length - free.length;
      if (free.length === 0) return 0;
      const deleted = this.db
        .prepare(`DELETE FROM deliveries WHERE id IN (${free.map(() => '?').join(',')}) RETURNING event_id`)
        .all(...free.map((r) => r.id)) as { event_id: number }[];
      for (const { event_id } of deleted) release(event_id);
      return deleted.length;
    });
    return { purged, leased };
  }

  /**
   * Hands the entries queued for `from` to `to`'s queue, due now with a fresh retry budget, queued
   * since their ingest still (as a fallback takes them). An event queued for `to` already is not
   * queued twice: that entry of `from` is deleted. With `cap`, `to`'s queue is filled up to it and no
   * further, as `eyrie dlq replay` does (see ChunkRoom): the rest stay on `from`, for another move once
   * it has drained. Run twice, or interrupted, nothing is queued twice.
   */
  move(
    from: string,
    to: string,
    progress: (done: number, total: number) => void = () => {},
    cap?: QueueCaps,
  ): MoveResult {
    const release = eventReleaser(this.db);
    const queues = new QueueRoom(this.db);
    const caps = new Map(cap === undefined ? [] : [[to, cap]]);
    const result: MoveResult = { moved: 0, duplicates: 0, leased: 0, kept: 0, tooLarge: 0 };
    const hand = this.db.prepare(
      `UPDATE deliveries SET destination = ?, due_at = ?, leased = 0, attempts = 0, first_attempt_at = NULL,
         last_error = NULL WHERE id = ?`,
    );
    const drop = this.db.prepare('DELETE FROM deliveries WHERE id = ?');
    const shared = this.db.prepare('SELECT refs > 1 FROM events WHERE id = ?').pluck();
    result.moved = this.inChunks(from, progress, (rows) => {
      const now = Date.now();
      // Only an event something else references may be queued for `to` too: most need no look. The
      // look scans `to`'s queue (there is no index by event), once per chunk.
      const maybe = rows.filter((r) => r.leased === 0 && shared.get(r.event_id) === 1).map((r) => r.event_id);
      const queued = new Set(
        maybe.length === 0
          ? []
          : (this.db
              .prepare(
                `SELECT event_id FROM deliveries WHERE destination = ? AND event_id IN (${maybe.map(() => '?').join(',')})`,
              )
              .pluck()
              .all(to, ...maybe) as number[]),
      );
      const room = new ChunkRoom(queues, caps);
      let moved = 0;
      for (const row of rows) {
        if (row.leased !== 0) {
          result.leased++;
          continue;
        }
        if (queued.has(row.event_id)) {
          drop.run(row.id);
          release(row.event_id);
          result.duplicates++;
          continue;
        }
        const verdict = room.admit(to, row.bytes);
        if (verdict === 'full') result.kept++;
        else if (verdict === 'too large') result.tooLarge++;
        else {
          hand.run(to, now, row.id);
          // Two entries of `from` for one event (not made by Eyrie, but cheap to keep out).
          queued.add(row.event_id);
          moved++;
        }
      }
      room.settle();
      return moved;
    });
    return result;
  }

  /**
   * inChunks over the entries of `destination`, in a transaction each, with their lease as it is in
   * that transaction. Leased rows are reported as such only while a server holds the data directory:
   * otherwise their lease was left by one that ended (SIGKILL), and its next start releases them.
   */
  private inChunks(
    destination: string,
    progress: (done: number, total: number) => void,
    apply: (rows: Row[]) => number,
  ): number {
    const running = dataDirInUse(this.dataDir);
    // `destination` again: the ids were read before the chunk's transaction, and an entry Eyrie acks
    // meanwhile may leave its id (the highest) to one it queues next for another destination.
    const rowsOf = (placeholders: string) =>
      this.db.prepare(
        `SELECT id, event_id, bytes, leased FROM deliveries WHERE destination = ? AND id IN (${placeholders}) ORDER BY id`,
      );
    return inChunks(
      this.db,
      {
        from: 'deliveries d',
        sql: 'WHERE d.destination = ?',
        and: 'WHERE d.destination = ? AND',
        params: [destination],
      },
      progress,
      (ids) => {
        const rows = (rowsOf(ids.map(() => '?').join(',')).all(destination, ...ids) as Row[]).map((r) =>
          running ? r : { ...r, leased: 0 },
        );
        return apply(rows);
      },
    );
  }

  close(): void {
    this.db.close();
  }
}
