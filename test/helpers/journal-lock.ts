import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/**
 * Another process takes the journal's write lock in `dataDir` (resolves once it holds it), runs
 * `sql` inside that transaction, and commits `holdMs` after `release()`: a write of this process
 * meanwhile waits in SQLite's busy handler, on the event loop, as it would for `eyrie dlq` or a disk
 * whose fsyncs stall. `exited` resolves with the holder's exit code and signal.
 */
export async function lockJournalElsewhere(
  dataDir: string,
  holdMs: number,
  sql = '',
): Promise<{ release: () => void; exited: Promise<unknown[]> }> {
  const holder = spawn(
    process.execPath,
    [
      '-e',
      `const Database = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))});
       const db = new Database(${JSON.stringify(join(dataDir, 'eyrie.db'))});
       db.exec(${JSON.stringify(`BEGIN IMMEDIATE; ${sql}`)});
       process.stdout.write('locked\\n');
       process.stdin.once('data', () => {
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${holdMs});
         db.exec('COMMIT');
         process.exit(0);
       });`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const exited = once(holder, 'exit');
  await once(holder.stdout, 'data');
  return { release: () => holder.stdin.write('go\n'), exited };
}
