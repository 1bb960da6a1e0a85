/**
 * The WAL checkpointer's thread (started by wal-checkpointer.ts): its own connection copies committed
 * WAL pages into the database file, so the event loop of the process never waits for that copy or
 * its fsyncs.
 *
 * It blocks on the shared counters with Atomics.wait instead of running an event loop: a commit wakes
 * it at once, and between checkpoints it sleeps at least `minInterval` ms so that a busy writer is
 * followed by one checkpoint every few commits, not one per commit.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openSqlite } from './sqlite.ts';
import {
  COMMITS,
  IDLE_WAIT_MS,
  STOP,
  type CheckpointThreadData,
  type CheckpointThreadMessage,
} from './wal-checkpointer.ts';

const { file, signal, minInterval } = workerData as CheckpointThreadData;
const flags = new Int32Array(signal);
const post = (message: CheckpointThreadMessage) => parentPort?.postMessage(message);

const db = openSqlite(file);
// PASSIVE copies what it can without waiting for any lock: it never delays the writer, and never
// waits for it (no busy handler). What it leaves behind is taken by the next round.
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
post({ kind: 'ready' });
let lastError = '';
// Not a count the writer can have: the first round checkpoints at once, taking the commits made
// while this thread started and whatever WAL a previous run left.
let seen = -1;
while (Atomics.load(flags, STOP) === 0) {
  Atomics.wait(flags, COMMITS, seen, IDLE_WAIT_MS);
  if (Atomics.load(flags, STOP) !== 0) break;
  const commits = Atomics.load(flags, COMMITS);
  if (commits === seen) continue;
  seen = commits;
  try {
    checkpoint.get();
    lastError = '';
  } catch (err) {
    const message = (err as Error).message;
    // Reported once per distinct error, not once per round.
    if (message !== lastError) post({ kind: 'error', message });
    lastError = message;
  }
  Atomics.wait(flags, STOP, 0, minInterval);
}
db.close();
