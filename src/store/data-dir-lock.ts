import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openSqlite } from './sqlite.ts';
import { makeDirectory, openPrivateFile } from '../util/directory.ts';
import { errorCode } from '../util/error.ts';

/** How long a start waits for another process to let go of the directory (a restart that overlaps). */
const WAIT_MS = 3000;

/**
 * Keeps a second Eyrie process off a data directory whose journal this one writes. Two processes on
 * one journal would each release the other's leased entries when they start and send them again, and
 * both would keep wrong queue depths and caps.
 *
 * The lock is an exclusive transaction held on a small SQLite file, `eyrie.lock`: SQLite's locks are
 * POSIX record locks, which the kernel drops when the process ends, even by SIGKILL, so no stale lock
 * is ever left to clean up, and containers sharing the volume on one node see each other's. The dlq
 * CLI does not take it: it is meant to run beside the server.
 */
export class DataDirLock {
  private readonly db: Database.Database;
  readonly file: string;

  constructor(dataDir: string) {
    try {
      // 0700: the journal it will hold has every alert (command lines, often secrets) in it.
      makeDirectory(dataDir, 0o700);
    } catch (err) {
      throw new Error(`storage.path ${dataDir}: cannot create the directory: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.file = join(dataDir, 'eyrie.lock');
    let db: Database.Database | undefined;
    try {
      // A lock file this process may not write would open read-only and lock nothing.
      openPrivateFile(this.file);
      db = openSqlite(this.file, { timeout: WAIT_MS });
      db.exec('PRAGMA locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      this.db = db;
    } catch (err) {
      db?.close();
      if (errorCode(err) === 'SQLITE_BUSY') {
        throw new Error(
          `storage.path ${dataDir} is in use by another Eyrie process (it holds ${this.file}): two processes must not share one journal; stop the other one or give each its own storage.path`,
          { cause: err },
        );
      }
      // SQLite's own message ("database or disk is full": taking the lock writes a small journal
      // beside it) names no file.
      throw new Error(`storage.path ${dataDir}: cannot lock ${this.file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  release(): void {
    if (!this.db.open) return;
    this.db.exec('ROLLBACK');
    this.db.close();
  }
}

/**
 * Whether a process (a running `eyrie serve`) holds the lock of `dataDir` now. For the queue CLI, which
 * does not take it: a leased entry is being sent only while its server runs; otherwise its lease is
 * left by a process that ended, and released at the next start. Tries the lock without waiting and
 * lets go at once (a server starting meanwhile waits up to 3 s for it).
 */
export function dataDirInUse(dataDir: string): boolean {
  let db: Database.Database | undefined;
  try {
    db = openSqlite(join(dataDir, 'eyrie.lock'), { fileMustExist: true, timeout: 0 });
    db.exec('BEGIN EXCLUSIVE');
    db.exec('ROLLBACK');
    return false;
  } catch (err) {
    // No lock file: no server ever ran here. Anything else (read-only, unreadable): say in use, the safe side.
    return errorCode(err) !== 'SQLITE_CANTOPEN';
  } finally {
    db?.close();
  }
}
