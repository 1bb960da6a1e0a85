import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openDatabase } from '../delivery/journal.ts';
import { BACKSTOP_PAGES, WAL_SIZE_LIMIT, WalCheckpointer } from './wal-checkpointer.ts';
import { testTempDir } from '../../test/helpers/config-file.ts';
import { waitUntil } from '../../test/helpers/delivery.ts';

/** Commits `rows` rows of about 1 KiB each, one transaction per 10 rows. */
function writeRows(db: Database.Database, rows: number, checkpointer?: WalCheckpointer): void {
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
  const commit = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) insert.run('x'.repeat(1000));
  });
  for (let done = 0; done < rows; done += 10) {
    commit(10);
    checkpointer?.notify();
  }
}

const unexpected = (err: Error) => assert.fail(`unexpected: ${err.message}`);

const walFrames = (db: Database.Database) =>
  db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number; checkpointed: number };

describe('WalCheckpointer', () => {
  it('copies committed pages into the database file from its thread; the writer never checkpoints below the backstop', async (t) => {
    const dir = testTempDir(t, 'eyrie-wal-');
    const db = openDatabase(dir);
    const file = join(dir, 'eyrie.db');
    const errors: Error[] = [];
    const checkpointer = new WalCheckpointer(db, {
      onError: (e) => errors.push(e),
      onFallback: (e) => errors.push(e),
    });
    t.after(() => checkpointer.stop());
    assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), BACKSTOP_PAGES);
    const before = statSync(file).size;
    // About 300 pages: far below the backstop, so only the thread can have copied them.
    writeRows(db, 1000, checkpointer);
    await waitUntil(
      () => statSync(file).size > before + 900 * 1000,
      5000,
      () => 'the database file holds the rows',
    );
    assert.deepEqual(errors, []);
    await checkpointer.stop();
    db.close();
  });

  it('without it, the same commits stay in the WAL (what the test above rules out)', (t) => {
    const dir = testTempDir(t, 'eyrie-wal-');
    const db = openDatabase(dir);
    db.exec(`PRAGMA wal_autocheckpoint = ${BACKSTOP_PAGES}`);
    const before = statSync(join(dir, 'eyrie.db')).size;
    writeRows(db, 1000);
    assert.equal(statSync(join(dir, 'eyrie.db')).size, before);
    const { log, checkpointed } = walFrames(db);
    assert.ok(log > 250, `WAL frames ${log}`);
    assert.equal(checkpointed, log, 'a checkpoint of our own copies them all');
    db.close();
  });

  it('gives back the WAL a long reader let grow, once checkpoints can reset it', async (t) => {
    const dir = testTempDir(t, 'eyrie-wal-');
    const db = openDatabase(dir);
    const wal = join(dir, 'eyrie.db-wal');
    const checkpointer = new WalCheckpointer(db, { onError: unexpected, onFallback: unexpected });
    t.after(() => checkpointer.stop());
    await settlesWithin(checkpointer.ready, 10_000, 'ready once the thread runs');
    writeRows(db, 10, checkpointer);
    // A reader holding its snapshot (a slow `eyrie queue list`, a sqlite3 shell left in BEGIN): no
    // checkpoint may go past it, and the WAL grows with every commit, far beyond the backstop.
    const reader = openDatabase(dir);
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM t').get();
    writeRows(db, 30_000, checkpointer);
    const grown = statSync(wal).size;
    assert.ok(grown > 2 * WAL_SIZE_LIMIT, `WAL ${grown} bytes`);
    reader.exec('COMMIT');
    // The reader gone, the WAL is checkpointed and restarts from its start: SQLite keeps the file at
    // its largest size unless told to truncate it (journal_size_limit).
    await waitUntil(
      () => {
        writeRows(db, 10, checkpointer);
        return statSync(wal).size <= WAL_SIZE_LIMIT;
      },
      10_000,
      () => `WAL still ${statSync(wal).size} bytes`,
    );
    reader.close();
    await checkpointer.stop();
    db.close();
  });

  it('stop() resolves once the thread closed its connection: the last close removes the WAL', async (t) => {
    const dir = testTempDir(t, 'eyrie-wal-');
    const db = openDatabase(dir);
    const checkpointer = new WalCheckpointer(db, { onError: unexpected, onFallback: unexpected });
    await settlesWithin(checkpointer.ready, 10_000, 'ready once the thread runs');
    writeRows(db, 200, checkpointer);
    db.close();
    await checkpointer.stop();
    assert.equal(existsSync(join(dir, 'eyrie.db-wal')), false, 'no WAL left behind');
    // And stop() again is the same promise, already resolved.
    await checkpointer.stop();
  });

  it('when the thread cannot run, checkpoints go back inside commits and the fallback is reported', async () => {
    const execs: string[] = [];
    // A database the thread cannot open: its directory does not exist.
    const db = {
      name: join(tmpdir(), 'eyrie-no-such-dir', 'x', 'eyrie.db'),
      open: true,
      exec: (sql: string) => execs.push(sql),
    } as unknown as Database.Database;
    const fallbacks: Error[] = [];
    const checkpointer = new WalCheckpointer(db, {
      onError: unexpected,
      onFallback: (e) => fallbacks.push(e),
    });
    await checkpointer.exited;
    await settlesWithin(checkpointer.ready, 1000, 'ready (inline checkpoints) once the thread is gone');
    assert.equal(fallbacks.length, 1);
    assert.match(fallbacks[0]!.message, /unable to open database file|directory does not exist/);
    assert.deepEqual(execs, [
      `PRAGMA wal_autocheckpoint = ${BACKSTOP_PAGES}`,
      'PRAGMA wal_autocheckpoint = 1000',
    ]);
  });
});

/** Fails, instead of hanging the test, when `promise` does not settle within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not ${what} within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
