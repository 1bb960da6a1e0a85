import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/** Slots of the shared Int32Array: commits counted by the writer, and the stop flag. */
export const COMMITS = 0;
export const STOP = 1;
/** The thread re-checks the stop flag at least this often (ms), even if a wake-up were missed. */
export const IDLE_WAIT_MS = 60_000;

export interface CheckpointThreadData {
  file: string;
  signal: SharedArrayBuffer;
  minInterval: number;
}

export type CheckpointThreadMessage = { kind: 'ready' } | { kind: 'error'; message: string };

/**
 * WAL pages the writer's own connection may hold before it checkpoints inline (a backstop: the
 * thread keeps the WAL far below this while it keeps up). 4,000 pages of 4 KiB: 16 MiB of WAL at most.
 */
export const BACKSTOP_PAGES = 4000;
/**
 * What the WAL file is cut back to when it restarts (`journal_size_limit`, bytes): the backstop's
 * 16 MiB. A reader that holds a snapshot for long (`eyrie queue list` on millions of entries, a
 * sqlite3 shell left in a transaction) stops every checkpoint past it, and the WAL grows with each
 * commit meanwhile (500 MB in a minute at 5,000 events/s); without a limit SQLite keeps the file at
 * that size for good, rewriting it from its start.
 */
export const WAL_SIZE_LIMIT = BACKSTOP_PAGES * 4096;
/**
 * Shortest time (ms) between two checkpoints of the thread: each one fsyncs twice, so under load it
 * takes the commits of this long at once (about 1 MB of WAL at 15,000 events/s), not one at a time.
 */
const MIN_INTERVAL_MS = 50;
/** SQLite's default wal_autocheckpoint, restored when the thread is gone. */
const INLINE_PAGES = 1000;

export interface CheckpointerEvents {
  /** A checkpoint failed (reported once per distinct error, again after one succeeded). */
  onError: (err: Error) => void;
  /** The thread stopped unexpectedly: checkpoints are back inline on the writer's connection. */
  onFallback: (err: Error) => void;
}

/**
 * Starts wal-checkpoint-thread. Built, it is a .js file beside this one. Run from src/ (tsx: tests,
 * `npm run dev`) it is a .ts file, and a worker does not inherit tsx's loader: the thread registers it
 * first.
 */
function startThread(workerData: CheckpointThreadData): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./wal-checkpoint-thread.js', import.meta.url), { workerData });
  }
  const tsx = import.meta.resolve('tsx/esm/api');
  const thread = new URL('./wal-checkpoint-thread.ts', import.meta.url).href;
  const source = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(thread)}); })`;
  return new Worker(source, { eval: true, workerData });
}

/**
 * Moves a WAL database's checkpoints off the writing thread.
 *
 * SQLite checkpoints automatically inside the commit that crosses `wal_autocheckpoint` pages, on the
 * committing thread, and with `synchronous = NORMAL` that checkpoint fsyncs the WAL and the database
 * file: every few thousand events, the event loop stalls for a copy and two fsyncs (measured: the
 * journal's time per event falls by about a third without them, see docs/performance.md). Here a
 * worker thread with its own connection runs PASSIVE checkpoints after commits (`notify`), and the
 * writer's automatic checkpoint stays on at BACKSTOP_PAGES: the WAL restarts only after a checkpoint
 * that copied every frame, which a thread racing a busy writer may rarely see, so the writer still
 * finishes the job now and then — copying only the few frames the thread has not.
 */
export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly flags: Int32Array;
  private stopping = false;
  /** Resolves when the thread has closed its connection and exited. */
  readonly exited: Promise<void>;
  /** Resolves once the thread runs (or is gone, checkpoints inline again); never rejects. */
  readonly ready: Promise<void>;

  constructor(db: Database.Database, events: CheckpointerEvents, minInterval = MIN_INTERVAL_MS) {
    const signal = new SharedArrayBuffer(8);
    this.flags = new Int32Array(signal);
    const data: CheckpointThreadData = { file: db.name, signal, minInterval };
    db.exec(`PRAGMA wal_autocheckpoint = ${BACKSTOP_PAGES}`);
    this.worker = startThread(data);
    let started!: () => void;
    this.ready = new Promise<void>((resolve) => (started = resolve));
    this.worker.on('message', (message: CheckpointThreadMessage) => {
      if (message.kind === 'error') events.onError(new Error(message.message));
      else if (message.kind === 'ready') {
        started();
        // Running: from now on never what keeps the process alive (a checkpoint cut short by an exit
        // is safe, SQLite recovers it). Until then, a failure to start must still be reported.
        if (!this.stopping) this.worker.unref();
      }
    });
    let failure: Error | undefined;
    this.worker.on('error', (err) => {
      failure = err;
    });
    this.exited = new Promise<void>((resolve) => {
      this.worker.once('exit', (code) => {
        if (!this.stopping) {
          // Gone without being asked (it failed to start, or crashed): checkpoint inline again.
          if (db.open) db.exec(`PRAGMA wal_autocheckpoint = ${INLINE_PAGES}`);
          events.onFallback(failure ?? new Error(`the checkpoint thread exited with code ${code}`));
        }
        started();
        resolve();
      });
    });
  }

  /** A commit happened: the thread checkpoints soon (at most every `minInterval` ms). */
  notify(): void {
    Atomics.add(this.flags, COMMITS, 1);
    Atomics.notify(this.flags, COMMITS);
  }

  /** Asks the thread to finish its current checkpoint, close its connection and exit (see `exited`). */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      // Whoever awaits the exit keeps the process alive until the thread has closed its connection.
      this.worker.ref();
      Atomics.store(this.flags, STOP, 1);
      Atomics.notify(this.flags, STOP);
      Atomics.notify(this.flags, COMMITS);
    }
    return this.exited;
  }
}
