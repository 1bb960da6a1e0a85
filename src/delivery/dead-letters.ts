import type Database from 'better-sqlite3';
import { openDatabase } from './journal.ts';

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

const CHUNK = 1000;

function where(selection: Selection): { sql: string; params: (string | number)[] } {
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
  return { sql: clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '', params };
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
    const and = w.sql.length > 0 ? `${w.sql} AND` : 'WHERE';
    const rows = this.db
      .prepare(
        `SELECT d.destination, count(*) AS n FROM dead_letters d
         ${and} d.destination NOT IN (${known.map(() => '?').join(',')}) GROUP BY d.destination ORDER BY d.destination`,
      )
      .all(...w.params, ...known) as { destination: string; n: number }[];
    return new Map(rows.map((r) => [r.destination, r.n]));
  }

  list(selection: Selection, limit = 100): DeadLetter[] {
    const w = where(selection);
    const rows = this.db
      .prepare(
        `SELECT d.id, d.destination, d.failed_at, d.attempts, d.reason, d.error, e.uuid, e.body
         FROM dead_letters d JOIN events e ON e.id = d.event_id ${w.sql} ORDER BY d.id LIMIT ?`,
      )
      .all(...w.params, limit) as {
      id: number;
      destination: string;
      failed_at: number;
      attempts: number;
      reason: string;
      error: string;
      uuid: string;
      body: string;
    }[];
    return rows.map((r) => {
      const event = JSON.parse(r.body) as { rule?: string; priority?: string };
      return {
        id: r.id,
        destination: r.destination,
        uuid: r.uuid,
        rule: event.rule ?? '',
        priority: event.priority ?? '',
        failedAt: new Date(r.failed_at).toISOString(),
        attempts: r.attempts,
        reason: r.reason,
        error: r.error,
      };
    });
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
   */
  replay(selection: Selection, progress: (done: number, total: number) => void = () => {}): number {
    return this.inChunks(selection, progress, (ids) => {
      const now = Date.now();
      const placeholders = ids.map(() => '?').join(',');
      this.db
        .prepare(
          `INSERT INTO deliveries (destination, event_id, bytes, enqueued_at, due_at)
           SELECT destination, event_id, bytes, ?, ? FROM dead_letters WHERE id IN (${placeholders}) ORDER BY id`,
        )
        .run(now, now, ...ids);
      this.db.prepare(`DELETE FROM dead_letters WHERE id IN (${placeholders})`).run(...ids);
    });
  }

  /** Deletes dead letters (and events nothing else references). */
  purge(selection: Selection, progress: (done: number, total: number) => void = () => {}): number {
    return this.inChunks(selection, progress, (ids) => {
      const placeholders = ids.map(() => '?').join(',');
      const eventIds = this.db
        .prepare(`DELETE FROM dead_letters WHERE id IN (${placeholders}) RETURNING event_id`)
        .all(...ids) as { event_id: number }[];
      const unref = this.db.prepare('UPDATE events SET refs = refs - 1 WHERE id = ? RETURNING refs');
      const drop = this.db.prepare('DELETE FROM events WHERE id = ?');
      for (const { event_id } of eventIds) {
        const row = unref.get(event_id) as { refs: number } | undefined;
        if (row && row.refs <= 0) drop.run(event_id);
      }
    });
  }

  private inChunks(
    selection: Selection,
    progress: (done: number, total: number) => void,
    apply: (ids: number[]) => void,
  ): number {
    const total = this.count(selection);
    const w = where(selection);
    const and = w.sql.length > 0 ? `${w.sql} AND` : 'WHERE';
    // Only the dead letters there now: a running Eyrie may add more meanwhile (a replayed event that
    // fails again), and a replay must not chase them.
    const last = (
      this.db.prepare(`SELECT max(d.id) AS id FROM dead_letters d ${w.sql}`).get(...w.params) as {
        id: number | null;
      }
    ).id;
    if (last === null) return 0;
    const next = this.db.prepare(
      `SELECT d.id FROM dead_letters d ${and} d.id > ? AND d.id <= ? ORDER BY d.id LIMIT ?`,
    );
    let done = 0;
    let after = 0;
    for (;;) {
      const ids = (next.all(...w.params, after, last, CHUNK) as { id: number }[]).map((r) => r.id);
      if (ids.length === 0) break;
      this.db.transaction(() => apply(ids))();
      after = ids[ids.length - 1]!;
      done += ids.length;
      progress(done, total);
    }
    return done;
  }

  close(): void {
    this.db.close();
  }
}
