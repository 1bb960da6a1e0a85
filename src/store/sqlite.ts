import Database from 'better-sqlite3';

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

export function openSqlite(file: string, options?: Database.Options): Database.Database {
  const db = new Database(file, options);
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
