import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DeadLetters } from './dead-letters.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A journal holding `count` dead letters of destination `d`, each with its own event row. */
function withDeadLetters(count: number): DeadLetters {
  const dir = mkdtempSync(join(tmpdir(), 'eyrie-dlq-'));
  dirs.push(dir);
  const dlq = new DeadLetters(dir);
  addDeadLetters(dlq, count);
  return dlq;
}

function addDeadLetters(dlq: DeadLetters, count: number): void {
  const event = dlq.db.prepare("INSERT INTO events (uuid, body, received_at, refs) VALUES ('u', '{}', 0, 1)");
  const dead = dlq.db.prepare(
    "INSERT INTO dead_letters (destination, event_id, bytes, enqueued_at, failed_at, attempts, reason, error) VALUES ('d', ?, 2, 0, 0, 1, 'permanent_400', 'no')",
  );
  dlq.db.transaction(() => {
    for (let i = 0; i < count; i++) dead.run(event.run().lastInsertRowid);
  })();
}

describe('DeadLetters', () => {
  it('replays the dead letters there when it starts, not those added meanwhile (a running Eyrie re-failing them)', () => {
    const dlq = withDeadLetters(2500);
    try {
      // Each chunk replayed fails again at once and comes back as new dead letters, faster than the
      // replay moves on: a replay that chased them would never end.
      const { replayed } = dlq.replay({ destination: 'd' }, () => addDeadLetters(dlq, 1000));
      assert.equal(replayed, 2500);
      assert.equal(
        dlq.count({ destination: 'd' }),
        3000,
        'the three chunks that came back are still dead letters',
      );
      const queued = dlq.db.prepare('SELECT count(*) AS n FROM deliveries').get() as { n: number };
      assert.equal(queued.n, 2500);
    } finally {
      dlq.close();
    }
  });

  it('fills a capped queue up to its cap, by count or by bytes, and keeps the rest as dead letters', () => {
    const dlq = withDeadLetters(2500);
    const queued = () => (dlq.db.prepare('SELECT count(*) AS n FROM deliveries').get() as { n: number }).n;
    try {
      const byCount = new Map([['d', { maxEvents: 1000, maxBytes: 0 }]]);
      const first = dlq.replay({ destination: 'd' }, undefined, byCount);
      assert.deepEqual(first, { replayed: 1000, kept: new Map([['d', 1500]]), tooLarge: new Map() });
      assert.equal(queued(), 1000);
      assert.equal(dlq.count({ destination: 'd' }), 1500);
      // Still full: nothing moves.
      assert.deepEqual(dlq.replay({ destination: 'd' }, undefined, byCount).replayed, 0);
      // Each dead letter is 2 bytes: 2,010 bytes of room take 5 more.
      const byBytes = new Map([['d', { maxEvents: 0, maxBytes: 2010 }]]);
      assert.deepEqual(dlq.replay({ destination: 'd' }, undefined, byBytes), {
        replayed: 5,
        kept: new Map([['d', 1495]]),
        tooLarge: new Map(),
      });
      // Each larger than the whole byte cap: never kept "until it drains".
      const tiny = new Map([['d', { maxEvents: 0, maxBytes: 1 }]]);
      assert.deepEqual(dlq.replay({ destination: 'd' }, undefined, tiny), {
        replayed: 0,
        kept: new Map(),
        tooLarge: new Map([['d', 1495]]),
      });
      // Uncapped: the rest.
      assert.equal(dlq.replay({ destination: 'd' }).replayed, 1495);
      assert.equal(queued(), 2500);
    } finally {
      dlq.close();
    }
  });
  it('counts entries Eyrie queues between chunks against the cap (estimated from the ids past those counted)', () => {
    const dlq = withDeadLetters(3000);
    const queue = dlq.db.prepare(
      "INSERT INTO deliveries (destination, event_id, bytes, enqueued_at, due_at) VALUES ('d', 1, 2, 0, 0)",
    );
    const queueMeanwhile = (n: number) =>
      dlq.db.transaction(() => {
        for (let i = 0; i < n; i++) queue.run();
      })();
    const queued = () => (dlq.db.prepare('SELECT count(*) AS n FROM deliveries').get() as { n: number }).n;
    try {
      let chunks = 0;
      // After the first chunk Eyrie queues 6,000 (the estimate, far from the cap, counts nothing
      // again), after the second 1,500 (near the cap: the count of the first chunk stands in).
      const result = dlq.replay(
        { destination: 'd' },
        () => queueMeanwhile([6000, 1500, 0][chunks++]!),
        new Map([['d', { maxEvents: 10_000, maxBytes: 0 }]]),
      );
      assert.deepEqual(result, { replayed: 2500, kept: new Map([['d', 500]]), tooLarge: new Map() });
      assert.equal(queued(), 10_000);
    } finally {
      dlq.close();
    }
  });

  it('lists in pages read whole: a paused listing holds no read snapshot that would stop a checkpoint', () => {
    const dlq = withDeadLetters(2500);
    const other = new Database(dlq.db.name);
    try {
      const entries = dlq.entries({ destination: 'd' }, 2400);
      const first = entries.next();
      assert.equal(first.done, false);
      // The consumer waits (a slow pipe); meanwhile a running Eyrie writes and checkpoints.
      other.prepare("INSERT INTO events (uuid, body, received_at, refs) VALUES ('w', '{}', 0, 1)").run();
      const [checkpoint] = other.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
      assert.equal(checkpoint!.busy, 0, 'the checkpoint was not held up by the listing');
      const ids = [first.value.id, ...[...entries].map((e) => e.id)];
      assert.equal(ids.length, 2400);
      assert.ok(
        ids.every((id, i) => i === 0 || id > ids[i - 1]!),
        'in id order, none twice',
      );
      assert.equal([...dlq.entries({ destination: 'd' }, 5000)].length, 2500);
    } finally {
      other.close();
      dlq.close();
    }
  });
});
