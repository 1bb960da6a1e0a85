import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, JournalUnavailableError } from './journal.ts';
import { openSqlite } from '../store/sqlite.ts';
import type { Statement } from 'better-sqlite3';
import { makeEvents, sleep } from '../../test/helpers/delivery.ts';
import { lockJournalElsewhere } from '../../test/helpers/journal-lock.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A new data directory, removed after the tests. */
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'eyrie-journal-'));
  dirs.push(dir);
  return dir;
}

/** A journal that commits at the end of each turn, with no disk cap unless `options` says otherwise. */
function openJournal(dir: string, options: Partial<ConstructorParameters<typeof Journal>[0]> = {}): Journal {
  return new Journal({ dataDir: dir, commitInterval: 0, commitMaxEvents: 100, diskCap: 0, ...options });
}

/** Destination `d`'s queue, uncapped. */
function queueOf(journal: Journal) {
  return journal.queue('d', { maxEvents: 0, maxBytes: 0, whenFull: 'drop_oldest' }, () => {});
}

describe('Journal', () => {
  it("refuses a database with tables but none of Eyrie's (another program's, or a WAL from elsewhere), leaving it as it is", () => {
    const dir = dataDir();
    const file = join(dir, 'eyrie.db');
    // Another database whose tables are still in its WAL, copied in as a restore might.
    const other = join(dataDir(), 'other.db');
    const db = openSqlite(other);
    db.exec('PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0');
    db.exec('CREATE TABLE metrics (name TEXT); CREATE TABLE samples (value REAL)');
    copyFileSync(other, file);
    copyFileSync(`${other}-wal`, `${file}-wal`);
    db.close();
    const wal = readFileSync(`${file}-wal`);
    assert.throws(
      () => openJournal(dir),
      new RegExp(
        `^Error: cannot open the journal ${file}: it holds tables of another program \\(metrics, samples\\), none of Eyrie's`,
      ),
    );
    assert.deepEqual(readFileSync(`${file}-wal`), wal, 'nor its WAL checkpointed into it by the refusal');
    const after = openSqlite(file, { readonly: true });
    const tables = after
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .pluck()
      .all();
    after.close();
    assert.deepEqual(tables, ['metrics', 'samples'], 'no empty journal created over it');
  });

  it('a journal with a column missing (another version): refuses, naming the file and what to do, and lets go of it', async () => {
    const dir = dataDir();
    await openJournal(dir).close();
    const db = openSqlite(join(dir, 'eyrie.db'));
    db.exec('ALTER TABLE deliveries DROP COLUMN last_error');
    db.close();
    assert.throws(
      () => openJournal(dir),
      (err: Error) => {
        assert.match(
          err.message,
          new RegExp(`^the journal ${join(dir, 'eyrie.db')} does not have the tables`),
        );
        assert.match(err.message, /no such column: last_error/);
        assert.match(err.message, /move the file/);
        return true;
      },
    );
    // The lock was released: another attempt meets the same schema error, not "in use".
    assert.throws(() => openJournal(dir), /does not have the tables/);
  });

  it('a journal of a newer format than this version reads: refuses in one line naming the file, leaves it as it is, lets go of it', async () => {
    const dir = dataDir();
    const file = join(dir, 'eyrie.db');
    await openJournal(dir).close();
    const db = openSqlite(file);
    db.exec('PRAGMA user_version = 99');
    db.close();
    for (let i = 0; i < 2; i++) {
      // The second attempt meets the same error, not "in use": the lock was released.
      assert.throws(
        () => openJournal(dir),
        new RegExp(
          `^Error: cannot open the journal ${file}: it was written by a newer version of Eyrie \\(journal format 99, this version reads up to 1\\); run that version or a later one`,
        ),
      );
    }
    const after = openSqlite(file, { readonly: true });
    assert.equal(after.prepare('PRAGMA user_version').pluck().get(), 99, 'not stamped over');
    after.close();
  });

  it('records its format in a new journal, and takes one written before formats were recorded (leases of 1) as it is', async () => {
    const dir = dataDir();
    const file = join(dir, 'eyrie.db');
    let journal = openJournal(dir);
    await journal.append(makeEvents(3, 5).map((event) => ({ event, destinations: [queueOf(journal)] })));
    await journal.close();
    const db = openSqlite(file);
    assert.equal(db.prepare('PRAGMA user_version').pluck().get(), 1);
    // As a build before claim tokens left it when killed mid-send: `leased` 1, due at the lease's end.
    db.exec(`PRAGMA user_version = 0; UPDATE deliveries SET leased = 1, due_at = ${Date.now() + 3_600_000}`);
    db.close();
    journal = openJournal(dir);
    try {
      assert.equal(queueOf(journal).claim(Date.now(), 10, 0, 60_000).length, 3, 'released at open, due now');
    } finally {
      await journal.close();
    }
    const after = openSqlite(file, { readonly: true });
    assert.equal(after.prepare('PRAGMA user_version').pluck().get(), 1, 'stamped');
    after.close();
  });

  it('waits while another process (eyrie dlq) holds the write lock, instead of failing a claim as locked', async () => {
    const dir = dataDir();
    const journal = openJournal(dir);
    try {
      const queue = queueOf(journal);
      await journal.append(makeEvents(2, 3).map((event) => ({ event, destinations: [queue] })));
      // Takes the write lock, writes, and commits 300 ms later: a claim that read first and then
      // asked for the lock would find its snapshot stale (SQLITE_BUSY) instead of waiting.
      const { release, exited } = await lockJournalElsewhere(
        dir,
        300,
        "INSERT INTO events (uuid, body, received_at, refs) VALUES ('x', '{}', 0, 0)",
      );
      release();
      const started = Date.now();
      assert.equal(queue.claim(Date.now(), 10, 0, 60_000).length, 2);
      assert.ok(Date.now() - started >= 150, `waited for the lock (${Date.now() - started} ms)`);
      assert.deepEqual(await exited, [0, null]);
    } finally {
      await journal.close();
    }
  });

  it('waits briefly once a write waited in vain for a lock held by a stuck process, until one gets it', async () => {
    const dir = dataDir();
    const journal = openJournal(dir);
    // `eyrie dlq replay` stopped (Ctrl-Z, SIGSTOP) inside a chunk's transaction.
    const stuck = openSqlite(join(dir, 'eyrie.db'));
    try {
      const queue = queueOf(journal);
      await journal.append(makeEvents(2, 3).map((event) => ({ event, destinations: [queue] })));
      stuck.exec('BEGIN IMMEDIATE');
      let started = performance.now();
      assert.throws(() => queue.claim(Date.now(), 10, 0, 60_000), /database is locked/);
      assert.ok(performance.now() - started >= 4500, 'the first write waits the full busy timeout');
      // Each wait blocks the event loop: 5 s a write, back to back, left /healthz unanswered.
      started = performance.now();
      assert.throws(() => queue.claim(Date.now(), 10, 0, 60_000), /database is locked/);
      assert.ok(performance.now() - started < 1000, `waited ${Math.round(performance.now() - started)} ms`);
      stuck.exec('ROLLBACK');
      assert.equal(queue.claim(Date.now(), 10, 0, 60_000).length, 2);
      assert.equal(journal.db.prepare('PRAGMA busy_timeout').pluck().get(), 5000, 'the full wait is back');
    } finally {
      stuck.close();
      await journal.close();
    }
  });

  it('refuses an append over the disk cap with a rejected promise, never a throw', async () => {
    const dir = dataDir();
    const journal = openJournal(dir, { diskCap: 1 });
    try {
      const queue = queueOf(journal);
      const [event] = makeEvents(1, 1);
      // The caller (the engine) undoes its dedup keys in a rejection handler: a throw would skip it.
      let appended: Promise<void> | undefined;
      assert.doesNotThrow(() => (appended = journal.append([{ event: event!, destinations: [queue] }])));
      await assert.rejects(appended!, JournalUnavailableError);
    } finally {
      await journal.close();
    }
  });

  it('refuses new events while the disk is short of the space deliveries need, and takes them again once freed', async () => {
    const dir = dataDir();
    let free = 1024 * 1024; // a nearly full disk: claims, acks and checkpoints would fail next
    const journal = openJournal(dir, { diskSpace: () => ({ free, size: 100 * 1024 * 1024 * 1024 }) });
    try {
      const queue = queueOf(journal);
      const [first, second] = makeEvents(2, 1);
      await assert.rejects(
        journal.append([{ event: first!, destinations: [queue] }]),
        (err: Error) =>
          err instanceof JournalUnavailableError &&
          /short of disk space: 1048576 bytes free/.test(err.message),
      );
      assert.equal(journal.overDiskCap()?.limit, 'free_space', 'what /healthz tells apart from disk_cap');
      // Space freed (deliveries, or the operator): accepted again.
      free = 1024 * 1024 * 1024;
      await sleep(300); // the check is cached for 250 ms
      await journal.append([{ event: second!, destinations: [queue] }]);
      assert.equal(queue.depth().count, 1);
    } finally {
      await journal.close();
    }
  });

  it('keeps a quarter of a small file system free, not the whole floor, and nothing on one that reports no size', async () => {
    const dir = dataDir();
    const MiB = 1024 * 1024;
    // A 40 MiB volume (a tmpfs) with 20 MiB free: the 32 MiB floor would refuse every event there, for good.
    let space = { free: 20 * MiB, size: 40 * MiB };
    const journal = openJournal(dir, { diskSpace: () => space });
    try {
      const queue = queueOf(journal);
      const [first, second, third] = makeEvents(3, 1);
      await journal.append([{ event: first!, destinations: [queue] }]);
      space = { free: 9 * MiB, size: 40 * MiB };
      await sleep(300); // the check is cached for 250 ms
      await assert.rejects(
        journal.append([{ event: second!, destinations: [queue] }]),
        /short of disk space: \d+ bytes free in .*, under the 10485760 bytes kept free/,
      );
      // Some FUSE file systems report every count as 0: no way to tell, the writes themselves will say.
      space = { free: 0, size: 0 };
      await sleep(300);
      await journal.append([{ event: third!, destinations: [queue] }]);
      assert.equal(queue.depth().count, 2);
    } finally {
      await journal.close();
    }
  });

  for (const [file, change] of [
    ['eyrie.db', 'removed'],
    ['eyrie.db-wal', 'removed'],
    ['eyrie.db', 'replaced'],
  ] as const) {
    it(`refuses commits for good once ${file} was ${change} under it, and still delivers what it had`, async () => {
      const dir = dataDir();
      const journal = openJournal(dir);
      try {
        const queue = queueOf(journal);
        const [first, second, third] = makeEvents(3, 1);
        await journal.append([{ event: first!, destinations: [queue] }]);
        const path = join(dir, file);
        if (change === 'removed') unlinkSync(path);
        else {
          writeFileSync(`${path}.new`, '');
          renameSync(`${path}.new`, path);
        }
        // SQLite would write on into the unlinked inode: a 200 for an event the next start never sees.
        const refused = journal.append([{ event: second!, destinations: [queue] }]);
        await assert.rejects(refused, (err: Error) => {
          assert.ok(err instanceof JournalUnavailableError);
          assert.match(
            err.message,
            new RegExp(`${file.replace('.', '\\.')} was ${change} while Eyrie was running`),
          );
          return true;
        });
        assert.match(journal.lastError ?? '', /restart Eyrie/);
        // Not only the next commit: every one until a restart.
        await assert.rejects(
          journal.append([{ event: third!, destinations: [queue] }]),
          JournalUnavailableError,
        );
        assert.equal(queue.depth().count, 1);
        assert.deepEqual(
          queue.claim(Date.now(), 10, 0, 60_000).map((e) => e.event.uuid),
          [first!.uuid],
        );
      } finally {
        await journal.close();
      }
    });
  }

  it('keeps the alerts it journals private: directory 0700, eyrie.db, -wal and -shm 0600 under umask 022', async () => {
    const dir = join(dataDir(), 'data');
    const umask = process.umask(0o022);
    let journal: Journal | undefined;
    try {
      journal = openJournal(dir);
      const queue = queueOf(journal);
      await journal.append([{ event: makeEvents(1, 2)[0]!, destinations: [queue] }]);
      const mode = (name: string) => (statSync(join(dir, name)).mode & 0o777).toString(8);
      assert.equal(mode(''), '700');
      for (const file of ['eyrie.db', 'eyrie.db-wal', 'eyrie.db-shm', 'eyrie.lock'])
        assert.equal(mode(file), '600', file);
    } finally {
      process.umask(umask);
      await journal?.close();
    }
  });

  it('opens when the leases of a previous run cannot be released (a full disk after a crash)', async () => {
    const dir = dataDir();
    const first = openJournal(dir);
    const queue = queueOf(first);
    const [event] = makeEvents(1, 2);
    await first.append([{ event: event!, destinations: [queue] }]);
    const t0 = Date.now();
    assert.equal(queue.claim(t0, 10, 0, 60_000).length, 1);
    await first.close(); // as after a crash: the row is still leased
    const db = openSqlite(join(dir, 'eyrie.db'));
    db.exec(
      `CREATE TRIGGER full BEFORE UPDATE ON deliveries BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`,
    );
    db.close();
    const second = openJournal(dir);
    try {
      assert.match(second.lastError ?? '', /cannot release .*database or disk is full/);
      second.db.exec('DROP TRIGGER full');
      const again = queueOf(second);
      assert.deepEqual(again.claim(t0 + 1, 10, 0, 60_000), [], 'still leased by the previous run');
      const [back] = again.claim(t0 + 60_001, 10, 0, 60_000);
      assert.equal(back?.event.uuid, event!.uuid, 'claimed again once that lease ran out');
    } finally {
      await second.close();
    }
  });

  it('keeps queue and dead-letter counts cached, re-read only after another connection wrote', async () => {
    const dir = dataDir();
    const journal = openJournal(dir);
    try {
      const queue = queueOf(journal);
      const [event] = makeEvents(1, 3);
      await journal.append([{ event: event!, destinations: [queue] }]);
      const [entry] = queue.claim(Date.now(), 10, 0, 60_000);
      assert.deepEqual(
        queue.giveUp([{ entry: entry!, reason: 'permanent_400', error: 'HTTP 400' }], undefined, 0),
        { settled: 1, deadLetters: 1 },
      );
      journal.refreshIfChangedElsewhere();
      assert.deepEqual([queue.depth().count, queue.deadLetterCount()], [0, 1], 'kept by its own writes');
      const cli = openSqlite(join(dir, 'eyrie.db'));
      cli.exec(
        `INSERT INTO deliveries (destination, event_id, bytes, enqueued_at, due_at)
           SELECT destination, event_id, bytes, enqueued_at, 0 FROM dead_letters;
         DELETE FROM dead_letters;`,
      );
      cli.close();
      assert.deepEqual([queue.depth().count, queue.deadLetterCount()], [0, 1], 'cached: no scan per read');
      journal.refreshIfChangedElsewhere();
      assert.deepEqual([queue.depth().count, queue.deadLetterCount()], [1, 0], 're-read after the replay');
    } finally {
      await journal.close();
    }
  });

  it('a claim cut by its byte limit reads the bodies of the events it takes only, not of max events', async () => {
    const journal = openJournal(dataDir());
    try {
      const queue = queueOf(journal);
      // Big events (a long command line, an env dump): 20 of 100 KB, a batch limit of 250 KB.
      const events = makeEvents(20, 5).map((e) => ({ ...e, output: 'x'.repeat(100_000) }));
      await journal.append(events.map((event) => ({ event, destinations: [queue] })));
      // Count the rows (each with its body) SQLite hands to JavaScript for the claim.
      const statements = journal.statements as unknown as Record<string, Statement>;
      const claimDue = statements['claimDue']!;
      let read = 0;
      const counted = (rows: Iterable<unknown>) =>
        (function* () {
          for (const row of rows) {
            read++;
            yield row;
          }
        })();
      statements['claimDue'] = {
        all: (...args: unknown[]) => [...counted(claimDue.all(...args))],
        iterate: (...args: unknown[]) => counted(claimDue.iterate(...args)),
      } as unknown as Statement;
      const batch = queue.claim(Date.now(), 1000, 250_000, 60_000);
      statements['claimDue'] = claimDue;
      assert.equal(batch.length, 2);
      assert.ok(read <= 3, `read ${read} bodies (2 MB) for a batch of 2: a claim held them all at once`);
    } finally {
      await journal.close();
    }
  });

  it('counts a dead letter once when a settle written in the same transaction fails', async () => {
    const dir = dataDir();
    const errors: number[] = [];
    const journal = openJournal(dir, {
      onSettleError: (_err, events) => errors.push(events),
    });
    try {
      const queue = queueOf(journal);
      await journal.append(makeEvents(2, 4).map((event) => ({ event, destinations: [queue] })));
      const now = Date.now();
      const [retried, failed] = queue.claim(now, 10, 0, 60_000);
      // The pending reschedule fails in its savepoint (as on a full disk); the give-up commits.
      journal.db.exec(
        `CREATE TRIGGER full BEFORE UPDATE OF last_error ON deliveries BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`,
      );
      queue.reschedule([retried!], now + 1000, 'HTTP 503', now);
      assert.deepEqual(
        queue.giveUp([{ entry: failed!, reason: 'permanent_400', error: 'HTTP 400' }], undefined, now),
        { settled: 1, deadLetters: 1 },
      );
      assert.deepEqual(errors, [1], 'the reschedule failed');
      const truth = journal.db.prepare('SELECT count(*) FROM dead_letters').pluck().get();
      assert.equal(truth, 1);
      assert.equal(queue.deadLetterCount(), 1, 'counted once, not again on top of the re-read');
      assert.equal(queue.depth().count, 1);
      // Shown in /healthz until results can be recorded again (ingest itself still works).
      assert.match(String(journal.settleError), /database or disk is full/);
      journal.db.exec('DROP TRIGGER full');
      const [again] = queue.claim(now + 120_000, 10, 0, 60_000);
      queue.reschedule([again!], now + 1000, 'HTTP 503', now);
      journal.flushSettles();
      assert.equal(journal.settleError, undefined, 'cleared by the next group that is written');
    } finally {
      await journal.close();
    }
  });

  it('re-reads the counts again after a re-read that failed', async () => {
    const dir = dataDir();
    const journal = openJournal(dir);
    try {
      const queue = queueOf(journal);
      await journal.append(makeEvents(2, 5).map((event) => ({ event, destinations: [queue] })));
      journal.refreshIfChangedElsewhere();
      // Another connection (the dlq CLI) empties the queue.
      const other = openSqlite(join(dir, 'eyrie.db'));
      other.exec('DELETE FROM deliveries');
      other.close();
      const statements = journal.statements as unknown as Record<string, unknown>;
      const depth = statements.depth;
      statements.depth = {
        get() {
          throw new Error('disk I/O error');
        },
      };
      assert.throws(() => journal.refreshIfChangedElsewhere(), /disk I\/O error/);
      statements.depth = depth;
      assert.equal(queue.depth().count, 2, 'the stale count, until a re-read succeeds');
      journal.refreshIfChangedElsewhere();
      assert.equal(queue.depth().count, 0, 'the next look re-reads');
    } finally {
      await journal.close();
    }
  });

  describe('a claim whose lease ran out (the clock stepped forward mid-send)', () => {
    const LEASE = 60_000;

    /** One entry claimed twice: `stale` by a send that outlived its lease, `current` by the claim after it. */
    async function claimedTwice() {
      const dir = dataDir();
      const journal = openJournal(dir);
      const queue = queueOf(journal);
      const [first, second] = makeEvents(2, 1);
      await journal.append([{ event: first!, destinations: [queue] }]);
      const t0 = Date.now();
      const [stale] = queue.claim(t0, 10, 0, LEASE);
      assert.deepEqual(queue.claim(t0 + 1, 10, 0, LEASE), [], 'leased: not claimed again');
      const [current] = queue.claim(t0 + LEASE + 1, 10, 0, LEASE);
      assert.equal(current?.id, stale?.id, 'the expired lease lets the entry be claimed again');
      return { journal, queue, stale: stale!, current: current!, second: second!, t0 };
    }

    it('its ack cannot delete the row SQLite gave the same id to afterwards', async () => {
      const { journal, queue, stale, current, second, t0 } = await claimedTwice();
      try {
        queue.ack([current]);
        journal.flushSettles();
        await journal.append([{ event: second, destinations: [queue] }]);
        const ids = journal.db.prepare('SELECT id FROM deliveries').pluck().all();
        assert.deepEqual(ids, [stale.id], 'the new row reuses the deleted id (the case at risk)');
        queue.ack([stale]);
        journal.flushSettles();
        assert.equal(queue.depth().count, 1);
        const [next] = queue.claim(t0 + LEASE + 2, 10, 0, LEASE);
        assert.equal(next?.event.uuid, second.uuid, 'the undelivered event is still queued');
      } finally {
        await journal.close();
      }
    });

    it('its reschedule or give-up leaves the entry to the claim that holds it now', async () => {
      const { journal, queue, stale, current, t0 } = await claimedTwice();
      try {
        queue.reschedule([stale], t0 + LEASE + 2, 'timeout', t0 + LEASE + 1);
        journal.flushSettles();
        assert.deepEqual(queue.claim(t0 + LEASE + 3, 10, 0, LEASE), [], 'still leased to the current claim');
        assert.deepEqual(
          queue.giveUp([{ entry: stale, reason: 'permanent', error: 'HTTP 400' }], undefined, t0),
          { settled: 0, deadLetters: 0 },
          'nothing given up, so nothing for the worker to count',
        );
        assert.equal(queue.deadLetterCount(), 0);
        assert.equal(queue.depth().count, 1);
        queue.ack([current]);
        journal.flushSettles();
        assert.equal(queue.depth().count, 0, 'the current claim settles it');
      } finally {
        await journal.close();
      }
    });
  });

  it('shifts the due times after a step back of the wall clock a chunk per turn, leases left alone', async () => {
    const journal = openJournal(dataDir(), { commitMaxEvents: 10_000 });
    try {
      const queue = queueOf(journal);
      await journal.append(makeEvents(5000, 9).map((event) => ({ event, destinations: [queue] })));
      const [leased] = queue.claim(Date.now(), 1, 0, 60_000);
      const before = Date.now();
      const step = -3600_000;
      const now = before + step;
      const future = () =>
        journal.db
          .prepare('SELECT count(*) FROM deliveries WHERE due_at > ? AND leased = 0')
          .pluck()
          .get(now);
      assert.equal(future(), 4999, 'queued since the stepped-back time: all in its future');
      queue.clockStepped(step, before);
      assert.equal(future(), 2999, 'one chunk at once, not the whole backlog in one turn');
      const deadline = Date.now() + 5000;
      while (future() !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(future(), 0, 'every chunk follows');
      assert.equal(queue.claim(now, 10_000, 0, 60_000).length, 4999, 'all due at the stepped-back time');
      const lease = journal.db.prepare('SELECT due_at FROM deliveries WHERE id = ?').pluck().get(leased!.id);
      assert.ok((lease as number) > before, 'a lease is its holder to settle: not shifted');
    } finally {
      await journal.close();
    }
  });

  it('a retry rescheduled under the new time while a step back is being shifted keeps its due time', async () => {
    const journal = openJournal(dataDir(), { commitMaxEvents: 10_000 });
    try {
      const queue = queueOf(journal);
      await journal.append(makeEvents(5000, 10).map((event) => ({ event, destinations: [queue] })));
      const [leased] = queue.claim(Date.now(), 1, 0, 60_000);
      const before = Date.now();
      const step = -3600_000;
      const now = before + step;
      // The backlog of the last hour, due as queued (the wall clock before the step).
      journal.db.prepare('UPDATE deliveries SET due_at = ? + id * 100 WHERE leased = 0').run(now);
      queue.clockStepped(step, before); // the first chunk at once, the rest in later turns
      // Its send failed meanwhile: rescheduled under the new time, 5 minutes from now.
      const dueAt = now + 300_000;
      queue.reschedule([leased!], dueAt, 'status 503', now);
      journal.flushSettles();
      const deadline = Date.now() + 5000;
      const pending = () =>
        journal.db
          .prepare('SELECT count(*) FROM deliveries WHERE due_at > ? AND id != ?')
          .pluck()
          .get(now, leased!.id);
      while (pending() !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 50));
      const due = journal.db.prepare('SELECT due_at FROM deliveries WHERE id = ?').pluck().get(leased!.id);
      assert.equal(due, dueAt, 'not shifted a second time (it would be retried at once)');
    } finally {
      await journal.close();
    }
  });
});
