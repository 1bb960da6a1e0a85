import Database from 'better-sqlite3';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';

/**
 * Every better-sqlite3 connection Eyrie opens (and its tests open) goes through here.
 *
 * better-sqlite3 12 on Node 24 aborts the process ("Assertion failed: (env) != nullptr" in
 * Statement::~Statement) when a Statement is garbage-collected while no JS context is entered, as in
 * an idle-time GC. Statements are therefore cached per SQL text and connections are kept referenced
 * for the life of the process, so no Statement is ever collected. The SQL texts are fixed or bounded
 * (IN lists of at most one chunk), so the cache stays small.
 */
const retained: unknown[] = [];

/** Where SQLite looks for a directory for its temporary files, in its order (os_unix.c). */
const sqliteTempDirectories = () => [
  process.env.SQLITE_TMPDIR,
  process.env.TMPDIR,
  '/var/tmp',
  '/usr/tmp',
  '/tmp',
  '.',
];

/**
 * Whether SQLite finds a directory it may write its temporary files in (the journal of a savepoint or
 * of a many-row write once past 64 KiB, as a group of acks or a dlq replay chunk writes), tested as
 * SQLite tests them. Under a read-only root file system (Kubernetes' readOnlyRootFilesystem without
 * a volume at /tmp) none is, and such writes failed with "disk I/O error": acks never recorded, the
 * same events sent again and again. Those connections keep them in memory instead (as large as the
 * pages the write changes: about 100 MB to drop 50,000 entries over a lowered cap at once), the
 * others on disk as before.
 */
export function hasTempDirectory(
  candidates: readonly (string | undefined)[] = sqliteTempDirectories(),
): boolean {
  return candidates.some((dir) => {
    if (dir === undefined || dir === '') return false;
    try {
      if (!statSync(dir).isDirectory()) return false;
      accessSync(dir, fsConstants.W_OK | fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function openSqlite(file: string, options?: Database.Options): Database.Database {
  const db = new Database(file, options);
  if (!hasTempDirectory()) db.exec('PRAGMA temp_store = MEMORY');
  const prepare = db.prepare.bind(db);
  const statements = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  }) as typeof db.prepare;
  retained.push(db, statements);
  return db;
}
