import { eyrieCli, runUnprivileged } from './helpers/eyrie-process.ts';
import { configFromYaml, testTempDir, writeConfig } from './helpers/config-file.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FakeDestination,
  removeConfigDirs,
  tempConfig,
  deadLetterRows,
  eventLines,
  failWith,
  hang,
  metricValue,
  query,
  queuedUuids,
  sleep,
  startEngine,
  succeed,
  waitUntil,
  type Behaviour,
} from './helpers/delivery.ts';
import type { EyrieConfig } from '../src/config/types.ts';
import { HttpStatusError, PermanentError } from '../src/delivery/errors.ts';
import { parseFalcoEvent, type FalcoEvent } from '../src/event/falco-event.ts';
import { openSqlite } from '../src/store/sqlite.ts';
import { DeadLetters } from '../src/delivery/dead-letters.ts';
import { QueuedEntries, type QueueListing } from '../src/delivery/queued.ts';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `eyrie dlq ARGS` as a child process (asynchronously: an engine in this process keeps running). */
function dlq(...args: string[]): Promise<CliResult> {
  return dlqWith({}, ...args);
}

/** `dlq` with these environment variables (EYRIE_CONFIG unset otherwise). */
function dlqWith(extraEnv: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> {
  return cli(extraEnv, 'dlq', ...args);
}

/** Runs `eyrie queue ARGS` as a child process, as `dlq` does. */
function queue(...args: string[]): Promise<CliResult> {
  return cli({}, 'queue', ...args);
}

function cli(extraEnv: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> {
  const env = { ...process.env };
  delete env.EYRIE_CONFIG;
  Object.assign(env, extraEnv);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...eyrieCli, ...args],
      { encoding: 'utf8', env, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function config(): EyrieConfig {
  return tempConfig(`
log: { level: silent }
delivery: { shutdown_timeout: 200ms }
destinations:
  - { name: sink, type: stdout, retry: { initial_interval: 5ms, max_interval: 20ms, jitter: 0 } }
  - { name: other, type: stdout, retry: { initial_interval: 5ms, max_interval: 20ms, jitter: 0 } }
`);
}

/** Syscall events: each carries an exact 64-bit evt.time (digits a plain JSON.parse would round). */
function syscallEvents(count: number, seed: number): { lines: string[]; events: FalcoEvent[] } {
  const lines = eventLines(200, seed)
    .filter((l) => /"evt\.time":\d{19}/.test(l))
    .slice(0, count);
  assert.equal(lines.length, count);
  return { lines, events: lines.map((l) => parseFalcoEvent(l)) };
}

const evtTime = (line: string) => /"evt\.time":(\d+)/.exec(line)![1]!;
const sorted = (xs: readonly string[]) => [...xs].sort();
const bad400 = () => new HttpStatusError(400, 'bad request');

describe('eyrie dlq', { timeout: 180_000 }, () => {
  const cfg = config();
  const dataDir = cfg.storage.path;
  const { lines, events } = syscallEvents(5, 31);
  const uuids = events.map((e) => e.uuid);
  // other refuses the first two events for good and delivers the rest.
  const otherDead = uuids.slice(0, 2);

  after(removeConfigDirs);

  before(async () => {
    const refuseFirstTwo: Behaviour = (batch) => {
      if (batch.some((e) => otherDead.includes(e.uuid))) throw new PermanentError('schema mismatch');
    };
    const te = startEngine(cfg, {
      sink: new FakeDestination('sink', failWith(bad400)),
      other: new FakeDestination('other', refuseFirstTwo),
    });
    try {
      await te.engine.route(events);
      await waitUntil(
        () =>
          deadLetterRows(dataDir, 'sink').length === 5 &&
          deadLetterRows(dataDir, 'other').length === 2 &&
          te.fakes.other!.delivered.length === 3,
        5000,
        () => 'dead letters: 5 for sink, 2 for other',
      );
    } finally {
      await te.close();
    }
  });

  it('list: a summary per destination, as text and JSON', async () => {
    const text = await dlq('list', '--data-dir', dataDir);
    assert.equal(text.code, 0, text.stderr);
    const rows = text.stdout.trimEnd().split('\n');
    assert.equal(rows.length, 2, text.stdout);
    const iso = '\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z';
    assert.match(rows[0]!, new RegExp(`^other\\t2\\toldest ${iso}\\tnewest ${iso}$`));
    assert.match(rows[1]!, new RegExp(`^sink\\t5\\toldest ${iso}\\tnewest ${iso}$`));

    const json = await dlq('list', '--data-dir', dataDir, '--json');
    assert.equal(json.code, 0, json.stderr);
    const summary = JSON.parse(json.stdout) as {
      destination: string;
      count: number;
      oldest: string;
      newest: string;
    }[];
    assert.deepEqual(
      summary.map((s) => [s.destination, s.count]),
      [
        ['other', 2],
        ['sink', 5],
      ],
    );
    for (const s of summary) {
      assert.ok(Date.parse(s.oldest) <= Date.parse(s.newest));
      assert.ok(Date.now() - Date.parse(s.oldest) < 60_000, 'failed during this test');
    }
  });

  it('list -d: the entries of one destination, as text and JSON, with --limit', async () => {
    const json = await dlq('list', '--data-dir', dataDir, '-d', 'sink', '--json');
    assert.equal(json.code, 0, json.stderr);
    const entries = JSON.parse(json.stdout) as {
      id: number;
      destination: string;
      uuid: string;
      rule: string;
      priority: string;
      attempts: number;
      reason: string;
      error: string;
    }[];
    assert.deepEqual(sorted(entries.map((e) => e.uuid)), sorted(uuids));
    for (const e of entries) {
      const event = events.find((x) => x.uuid === e.uuid)!;
      assert.equal(e.destination, 'sink');
      assert.equal(e.rule, event.rule);
      assert.equal(e.priority, event.priority);
      assert.equal(e.attempts, 1);
      assert.equal(e.reason, 'permanent_400');
      assert.equal(e.error, 'HTTP 400: bad request');
    }

    const text = await dlq('list', '--data-dir', dataDir, '--destination', 'other');
    assert.equal(text.code, 0, text.stderr);
    const rows = text.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split('\t'));
    assert.equal(rows.length, 2);
    const otherRows = deadLetterRows(dataDir, 'other');
    for (const [i, row] of rows.entries()) {
      const event = events.find((x) => x.uuid === otherRows[i]!.uuid)!;
      assert.deepEqual(
        [row[0], row[2], row[3], row[4], row[5]],
        [String(otherRows[i]!.id), event.priority, event.rule, 'permanent_undeliverable', 'schema mismatch'],
      );
      assert.equal(Date.parse(row[1]!), otherRows[i]!.failed_at);
    }

    const limited = await dlq('list', '--data-dir', dataDir, '-d', 'sink', '-n', '2', '--json');
    assert.equal((JSON.parse(limited.stdout) as unknown[]).length, 2);
  });

  it('list -d: one line per dead letter, whatever control characters its rule and error hold', async () => {
    const hostileCfg = config();
    const rule = 'Evil\n2\t2026-01-01T00:00:00.000Z\tCritical\tForged\u001b[2J\u001b]0;owned\u0007 C:\\x';
    const event = parseFalcoEvent(
      JSON.stringify({
        output: 'o',
        priority: 'Critical',
        rule,
        time: '2026-01-01T00:00:00Z',
        output_fields: {},
      }),
    );
    const te = startEngine(hostileCfg, {
      sink: new FakeDestination(
        'sink',
        failWith(() => new PermanentError('line one\r\nline two\u0085')),
      ),
      other: new FakeDestination('other', succeed),
    });
    try {
      await te.engine.route([event]);
      await waitUntil(
        () => deadLetterRows(hostileCfg.storage.path, 'sink').length === 1,
        5000,
        () => 'a dead letter for sink',
      );
    } finally {
      await te.close();
    }
    const text = await dlq('list', '--data-dir', hostileCfg.storage.path, '-d', 'sink');
    assert.equal(text.code, 0, text.stderr);
    const rows = text.stdout.split('\n');
    assert.deepEqual(rows.slice(1), [''], 'one line');
    const cells = rows[0]!.split('\t');
    assert.equal(cells.length, 6, rows[0]);
    assert.equal(
      cells[3],
      'Evil\\n2\\t2026-01-01T00:00:00.000Z\\tCritical\\tForged\\u001b[2J\\u001b]0;owned\\u0007 C:\\\\x',
    );
    assert.equal(cells[5], 'line one\\r\\nline two\\u0085');
  });

  it('show: one dead letter with its event, evt.time digits exact', async () => {
    const row = deadLetterRows(dataDir, 'sink')[0]!;
    const result = await dlq('show', String(row.id), '--data-dir', dataDir);
    assert.equal(result.code, 0, result.stderr);
    const cut = result.stdout.indexOf('\n}\n');
    assert.ok(cut > 0, result.stdout);
    const header = JSON.parse(result.stdout.slice(0, cut + 2)) as Record<string, unknown>;
    assert.equal(header.id, row.id);
    assert.equal(header.uuid, row.uuid);
    assert.equal(header.destination, 'sink');
    assert.equal(header.reason, 'permanent_400');
    assert.equal(header.event, undefined);
    const eventText = result.stdout.slice(cut + 3).trimEnd();
    const line = lines[uuids.indexOf(row.uuid)]!;
    assert.ok(
      eventText.includes(`"evt.time":${evtTime(line)}`),
      `evt.time ${evtTime(line)} kept exactly in ${eventText}`,
    );
    assert.equal((JSON.parse(eventText) as { uuid: string }).uuid, row.uuid);

    const missing = await dlq('show', '999999', '--data-dir', dataDir);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no dead letter 999999/);
  });

  it('replay and purge --id of no dead letter say so and exit 1, as show does', async () => {
    for (const verb of ['replay', 'purge']) {
      const res = await dlq(verb, '--data-dir', dataDir, '--id', '999999');
      assert.equal(res.code, 1, `${verb}: ${res.stdout}`);
      assert.match(res.stderr, /^no dead letter 999999$/m, verb);
    }
    assert.equal(deadLetterRows(dataDir, 'sink').length, 5, 'nothing touched');
  });

  it('list -d cut at its limit says on stderr how many there are in all', async () => {
    const cut = await dlq('list', '--data-dir', dataDir, '-d', 'sink', '-n', '2');
    assert.equal(cut.code, 0, cut.stderr);
    assert.equal(cut.stdout.trimEnd().split('\n').length, 2);
    assert.equal(cut.stderr.trim(), 'showing 2 of 5 dead letters of "sink"; -n 5 to see them all');
    const whole = await dlq('list', '--data-dir', dataDir, '-d', 'sink');
    assert.equal(whole.stderr, '', 'said only when cut');
  });

  it('replay with a config keeps the dead letters of destinations it has no durable queue for (no worker would read them)', async (t) => {
    // A copy of the data dir as it is now (sink 5, other 2): the tests below use the original.
    const { file, dir } = writeConfig(
      'destinations:\n  - { name: sink, type: stdout }\n  - { name: other, type: stdout, durability: memory }\n',
      testTempDir(t),
    );
    const copy = join(dir, 'data');
    cpSync(dataDir, copy, { recursive: true });

    const only = await dlq('replay', '-c', file, '-d', 'other');
    assert.equal(only.code, 1);
    assert.match(only.stdout, /^replayed 0 dead letters$/m);
    const kept = `kept 2 dead letters of "other": ${file} has no durable destination of that name`;
    assert.equal(only.stderr.trim(), kept);

    const all = await dlq('replay', '-c', file);
    assert.equal(all.code, 1);
    assert.match(all.stdout, /^replayed 5 dead letters$/m);
    assert.match(all.stderr, new RegExp(`^${kept.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    assert.equal(deadLetterRows(copy, 'other').length, 2, 'kept as dead letters, still listed');
    assert.deepEqual(queuedUuids(copy, 'other'), []);
    assert.deepEqual(sorted(queuedUuids(copy, 'sink')), sorted(uuids));
    assert.deepEqual(deadLetterRows(copy, 'sink'), []);
  });

  it('replay fills a queue up to its cap and keeps the rest; a -d that names nothing says so', async (t) => {
    const { file, dir } = writeConfig(
      'destinations:\n  - { name: sink, type: stdout, queue: { max_events: 3 } }\n  - { name: other, type: stdout, queue: { max_bytes: 10 } }\n',
      testTempDir(t),
    );
    const copy = join(dir, 'data');
    cpSync(dataDir, copy, { recursive: true });

    const capped = await dlq('replay', '-c', file, '-d', 'sink');
    assert.equal(capped.code, 1);
    assert.match(capped.stdout, /^replayed 3 dead letters$/m);
    assert.match(
      capped.stderr,
      /^kept 2 dead letters of "sink": its queue is at its cap \(queue\.max_events 3, queue\.max_bytes 268435456\); replay again once it has drained$/m,
    );
    assert.equal(queuedUuids(copy, 'sink').length, 3);
    assert.equal(deadLetterRows(copy, 'sink').length, 2, 'the rest are still dead letters');
    const large = await dlq('replay', '-c', file, '-d', 'other');
    assert.equal(large.code, 1);
    assert.match(
      large.stderr,
      /^kept 2 dead letters of "other": each is larger than its queue\.max_bytes \(10\); raise it to replay them, or purge them$/m,
    );
    assert.equal(deadLetterRows(copy, 'other').length, 2);
    const again = await dlq('replay', '-c', file, '-d', 'sink');
    assert.match(again.stdout, /^replayed 0 dead letters$/m);
    assert.equal(deadLetterRows(copy, 'sink').length, 2);

    const typo = await dlq('purge', '-c', file, '-d', 'snk');
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /^no destination "snk" in .* \(destinations: sink, other\)$/m);
    assert.match(typo.stdout, /^purged 0 dead letters$/m);
    // --data-dir needs no config: one EYRIE_CONFIG names (even one that is not there) is not read.
    const bare = await dlqWith(
      { EYRIE_CONFIG: join(dir, 'missing.yaml') },
      'list',
      '--data-dir',
      copy,
      '-d',
      'snk',
    );
    assert.equal(bare.code, 0);
    assert.equal(bare.stderr.trim(), 'no dead letters of "snk" (dead letters are kept for: other, sink)');
  });

  it('replay moves dead letters back to the queue; twice is idempotent; a new engine delivers each exactly once', async () => {
    const first = await dlq('replay', '--data-dir', dataDir, '-d', 'sink');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^replayed 5 dead letters$/m);
    assert.deepEqual(deadLetterRows(dataDir, 'sink'), []);
    assert.equal(deadLetterRows(dataDir, 'other').length, 2, 'other destination untouched');
    assert.deepEqual(sorted(queuedUuids(dataDir, 'sink')), sorted(uuids));
    const rows = query<{ attempts: number; due_at: number }>(
      dataDir,
      "SELECT attempts, due_at FROM deliveries WHERE destination = 'sink'",
    );
    assert.ok(
      rows.every((r) => r.attempts === 0 && r.due_at <= Date.now()),
      'a fresh retry budget, due now',
    );

    const second = await dlq('replay', '--data-dir', dataDir, '-d', 'sink');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^replayed 0 dead letters$/m);
    assert.equal(queuedUuids(dataDir, 'sink').length, 5, 'no duplicate queue entries');

    const te = startEngine(cfg, {
      sink: new FakeDestination('sink', succeed),
      other: new FakeDestination('other', succeed),
    });
    try {
      await waitUntil(
        () => te.fakes.sink!.delivered.length >= 5,
        5000,
        () => `${te.fakes.sink!.delivered.length}/5 replayed delivered`,
      );
      await sleep(100);
      assert.deepEqual(
        sorted(te.fakes.sink!.delivered),
        sorted(uuids),
        'each replayed entry delivered exactly once',
      );
      assert.deepEqual(te.fakes.other!.sends, [], 'nothing replayed for other');
      assert.deepEqual(queuedUuids(dataDir, 'sink'), []);
    } finally {
      await te.close();
    }
  });

  it('purge deletes dead letters (by id, by destination) and the events nothing references any more', async () => {
    const count = (table: string) =>
      query<{ n: number }>(dataDir, `SELECT count(*) AS n FROM ${table}`)[0]!.n;
    const otherRows = deadLetterRows(dataDir, 'other');
    assert.equal(otherRows.length, 2);
    assert.equal(count('events'), 2, 'only the events of the remaining dead letters are stored');

    const one = await dlq('purge', '--data-dir', dataDir, '--id', String(otherRows[0]!.id));
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^purged 1 dead letters$/m);
    assert.deepEqual(
      deadLetterRows(dataDir, 'other').map((r) => r.uuid),
      [otherRows[1]!.uuid],
    );
    assert.equal(count('events'), 1, 'the orphan event row is gone');

    const rest = await dlq('purge', '--data-dir', dataDir, '-d', 'other');
    assert.match(rest.stdout, /^purged 1 dead letters$/m);
    assert.equal(count('dead_letters'), 0);
    assert.equal(count('events'), 0);

    const again = await dlq('purge', '--data-dir', dataDir);
    assert.match(again.stdout, /^purged 0 dead letters$/m);
    const list = await dlq('list', '--data-dir', dataDir);
    assert.equal(list.stdout, 'no dead letters\n');
  });

  it('replay while the engine runs on the same data dir: the running engine delivers the entries', async () => {
    const liveCfg = config();
    const liveDir = liveCfg.storage.path;
    let refusing = true;
    const sink = new FakeDestination('sink', () => {
      if (refusing) throw bad400();
    });
    const te = startEngine(liveCfg, { sink, other: new FakeDestination('other', succeed) });
    try {
      const live = syscallEvents(4, 32).events;
      await te.engine.route(live);
      await waitUntil(
        () => deadLetterRows(liveDir, 'sink').length === 4,
        5000,
        () => 'four dead letters',
      );
      let metrics = await te.metrics.text();
      assert.equal(metricValue(metrics, 'eyrie_dead_letters', { destination: 'sink' }), 4);
      refusing = false;

      const replay = await dlq('replay', '--data-dir', liveDir, '-d', 'sink');
      assert.equal(replay.code, 0, replay.stderr);
      assert.match(replay.stdout, /^replayed 4 dead letters$/m);
      const replayedAt = Date.now();
      await waitUntil(
        () => sink.delivered.length >= 4,
        5000,
        () => `${sink.delivered.length}/4 delivered by the running engine`,
      );
      assert.ok(Date.now() - replayedAt < 3000, `picked up within ${Date.now() - replayedAt} ms`);
      await sleep(100);
      assert.deepEqual(sorted(sink.delivered), sorted(live.map((e) => e.uuid)), 'each exactly once');
      assert.deepEqual(queuedUuids(liveDir, 'sink'), []);
      metrics = await te.metrics.text();
      assert.equal(metricValue(metrics, 'eyrie_dead_letters', { destination: 'sink' }), 0);
      assert.equal(
        metricValue(metrics, 'eyrie_queue_depth', { destination: 'sink' }),
        0,
        'queue depth stays honest (never negative)',
      );
      assert.equal(te.engine.health().find((h) => h.name === 'sink')!.queued, 0);
    } finally {
      await te.close();
    }
  });

  it('a journal that cannot be opened: one line naming the file, exit 1, no stack trace', async (t) => {
    for (const [name, damage] of [
      ['not a database', (file: string) => writeFileSync(file, 'x'.repeat(8192))],
      ['a directory', (file: string) => mkdirSync(file)],
    ] as const) {
      const dir = testTempDir(t);
      damage(join(dir, 'eyrie.db'));
      for (const args of [['list'], ['show', '1'], ['replay'], ['purge']]) {
        const res = await dlq(...args, '--data-dir', dir);
        assert.equal(res.code, 1, `${name}: ${args[0]}`);
        assert.match(
          res.stderr,
          new RegExp(`^eyrie: cannot open the journal ${join(dir, 'eyrie.db')}: `),
          name,
        );
        assert.doesNotMatch(res.stderr, /\n\s+at /, `${name}: ${args[0]}: no stack trace`);
      }
    }
  });

  it('a journal of a newer format: one line naming the file, exit 1, left as it is', async (t) => {
    const dir = testTempDir(t);
    new DeadLetters(dir).close();
    const db = openSqlite(join(dir, 'eyrie.db'));
    db.exec('PRAGMA user_version = 99');
    db.close();
    for (const args of [
      ['dlq', 'list'],
      ['dlq', 'replay'],
      ['queue', 'list'],
      ['queue', 'purge', '-d', 'x'],
    ]) {
      const res = await cli({}, ...args, '--data-dir', dir);
      assert.equal(res.code, 1, args.join(' '));
      assert.equal(
        res.stderr,
        `eyrie: cannot open the journal ${join(dir, 'eyrie.db')}: it was written by a newer version of Eyrie ` +
          '(journal format 99, this version reads up to 1); run that version or a later one\n',
        args.join(' '),
      );
    }
  });

  it('a data directory without a journal (a mistyped --data-dir): said, exit 1, nothing created', async (t) => {
    const dir = join(testTempDir(t), 'typo');
    for (const args of [
      ['dlq', 'list'],
      ['dlq', 'purge'],
      ['queue', 'list'],
    ]) {
      const res = await cli({}, ...args, '--data-dir', dir);
      assert.equal(res.code, 1, args.join(' '));
      assert.match(res.stderr, new RegExp(`^eyrie: no journal in ${dir} \\(eyrie.db\\): check --data-dir`));
    }
    assert.equal(existsSync(dir), false);
  });

  it('a journal this user may not reach is not called missing', async (t) => {
    // A data directory 0700 of the user Eyrie runs as, read by another: the cause is the permission.
    if (process.getuid?.() !== 0) return t.skip('needs root, to run the CLI as another user');
    const dir = join(testTempDir(t), 'private');
    new DeadLetters(dir).close();
    const res = await runUnprivileged(t, [...eyrieCli, 'dlq', 'list', '--data-dir', dir]);
    if (res === undefined) return;
    assert.equal(res.code, 1);
    assert.doesNotMatch(res.stderr, /no journal in/);
    assert.match(res.stderr, /^eyrie: cannot open the journal .*EACCES/);
  });
});

describe('eyrie queue', { timeout: 180_000 }, () => {
  // Eyrie ran with `old` and `other`, both unreachable: five events queued for each. Then `old` was
  // renamed `new` (or removed): its entries are orphaned.
  const slow = 'retry: { initial_interval: 1h, max_interval: 1h, jitter: 0 }';
  const cfg = tempConfig(`
log: { level: silent }
delivery: { shutdown_timeout: 200ms }
destinations:
  - { name: old, type: stdout, ${slow} }
  - { name: other, type: stdout, ${slow} }
`);
  const dataDir = cfg.storage.path;
  const events = syscallEvents(5, 41).events;
  const uuids = events.map((e) => e.uuid);
  const unavailable = () => new HttpStatusError(503, 'unavailable');
  const count = (dir: string, table: string) =>
    query<{ n: number }>(dir, `SELECT count(*) AS n FROM ${table}`)[0]!.n;
  /** The config after the rename, and a copy of the data dir as the setup left it. */
  const renamed = (t: { after: (fn: () => void) => void }, newQueue = '') => {
    const { file, dir } = writeConfig(
      `destinations:\n  - { name: new, type: stdout${newQueue} }\n  - { name: other, type: stdout }\n`,
      testTempDir(t),
    );
    const copy = join(dir, 'data');
    cpSync(dataDir, copy, { recursive: true });
    return { file, copy };
  };

  after(removeConfigDirs);

  before(async () => {
    const te = startEngine(cfg, {
      old: new FakeDestination('old', failWith(unavailable)),
      other: new FakeDestination('other', failWith(unavailable)),
    });
    try {
      await te.engine.route(events);
      await waitUntil(
        () => te.fakes.old!.sends.length > 0 && te.fakes.other!.sends.length > 0,
        5000,
        () => 'a first attempt each',
      );
    } finally {
      await te.close();
    }
    assert.equal(queuedUuids(dataDir, 'old').length, 5);
    assert.equal(queuedUuids(dataDir, 'other').length, 5);
  });

  it("a chunk takes only its destination's entries, though an id it read was reused meanwhile", (t) => {
    // Between a chunk's read of ids and its transaction (which may wait for a running Eyrie's write
    // lock), Eyrie acks the entry with the highest id and queues one for another destination: SQLite
    // gives it the same id.
    for (const op of ['purge', 'move'] as const) {
      const store = new QueuedEntries(join(testTempDir(t), 'data'));
      try {
        const db = store.db;
        const insert = (destination: string, uuid: string) => {
          const event = db
            .prepare("INSERT INTO events (uuid, body, received_at, refs) VALUES (?, '{}', 1, 1)")
            .run(uuid).lastInsertRowid;
          db.prepare(
            'INSERT INTO deliveries (destination, event_id, bytes, enqueued_at, due_at) VALUES (?, ?, 2, 1, 1)',
          ).run(destination, event);
        };
        insert('old', 'a');
        const transaction = db.transaction.bind(db);
        db.transaction = ((fn: (ids: number[]) => number) => {
          const tx = transaction(fn);
          return {
            immediate: (ids: number[]) => {
              db.prepare("DELETE FROM deliveries WHERE destination = 'old'").run();
              insert('other', 'b');
              return tx.immediate(ids);
            },
          };
        }) as unknown as typeof db.transaction;
        if (op === 'purge') assert.equal(store.purge('old').purged, 0);
        else assert.equal(store.move('old', 'new').moved, 0);
        assert.deepEqual(
          db.prepare('SELECT destination FROM deliveries').pluck().all(),
          ['other'],
          `${op}: the other destination's entry is left alone`,
        );
      } finally {
        store.close();
      }
    }
  });

  it('list: per destination, queued entries, bytes, oldest, leased, and whether the config has a durable queue for it', async (t) => {
    const { file, copy } = renamed(t);
    const json = await queue('list', '-c', file, '--data-dir', copy, '--json');
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout) as QueueListing[];
    const bytes = query<{ b: number }>(
      copy,
      "SELECT sum(bytes) AS b FROM deliveries WHERE destination = 'old'",
    )[0]!.b;
    assert.deepEqual(
      rows.map((r) => [r.destination, r.count, r.bytes, r.leased, r.durable]),
      [
        ['new', 0, 0, 0, true],
        ['old', 5, bytes, 0, false],
        ['other', 5, bytes, 0, true],
      ],
    );
    assert.ok(Date.now() - Date.parse(rows[1]!.oldest!) < 60_000);
    assert.equal(rows[0]!.oldest, null);

    const text = await queue('list', '-c', file, '--data-dir', copy);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^DESTINATION\s+QUEUED\s+BYTES\s+OLDEST\s+LEASED\s+CONFIG$/);
    assert.match(lines[2]!, new RegExp(`^old\\s+5\\s+${bytes}\\s+\\d{4}-\\S+Z\\s+0\\s+orphaned$`));
    assert.match(text.stderr, /eyrie queue move -d NAME --to NEW, or eyrie queue purge -d NAME/);
    // Without a config there is nothing to say orphaned against.
    const bare = await queue('list', '--data-dir', copy, '--json');
    assert.deepEqual(
      (JSON.parse(bare.stdout) as { destination: string; durable: null }[]).map((r) => [
        r.destination,
        r.durable,
      ]),
      [
        ['old', null],
        ['other', null],
      ],
    );
  });

  it('purge: needs -d, refuses a destination the config still has unless --force, deletes the entries and the events nothing references', async (t) => {
    const { file, copy } = renamed(t);
    const none = await queue('purge', '-c', file, '--data-dir', copy);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /required option '-d, --destination <name>'/);
    const live = await queue('purge', '-c', file, '--data-dir', copy, '-d', 'other');
    assert.equal(live.code, 1);
    assert.match(
      live.stderr,
      /^"other" is a durable destination of .*: Eyrie delivers its queue; --force to purge it anyway/,
    );
    assert.equal(queuedUuids(copy, 'other').length, 5, 'untouched');

    const purged = await queue('purge', '-c', file, '--data-dir', copy, '-d', 'old');
    assert.equal(purged.code, 0, purged.stderr);
    assert.match(purged.stdout, /^purged 5 queued entries$/m);
    assert.deepEqual(queuedUuids(copy, 'old'), []);
    assert.equal(count(copy, 'events'), 5, 'still queued for other');
    assert.deepEqual(query(copy, 'SELECT id FROM events WHERE refs != 1'), [], 'one reference left each');

    const forced = await queue('purge', '-c', file, '--data-dir', copy, '-d', 'other', '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /^purged 5 queued entries$/m);
    assert.equal(count(copy, 'events'), 0, 'no event is referenced any more');
    const again = await queue('purge', '--data-dir', copy, '-d', 'old');
    assert.equal(again.code, 0);
    assert.match(again.stdout, /^purged 0 queued entries$/m);
    assert.equal(again.stderr.trim(), 'no entries queued for "old" (entries are queued for: none)');
  });

  it('move: up to the caps of the new queue, twice is idempotent, an event queued there already is not queued twice', async (t) => {
    const { file, copy } = renamed(t, ', queue: { max_events: 3 }');
    const refs = () =>
      query<{ refs: number }>(copy, 'SELECT refs FROM events ORDER BY id').map((r) => r.refs);
    const nowhere = await queue('move', '-c', file, '--data-dir', copy, '-d', 'old', '--to', 'gone');
    assert.equal(nowhere.code, 1);
    assert.match(
      nowhere.stderr,
      /^no durable destination "gone" in .* \(durable destinations: new, other\)$/m,
    );
    const live = await queue('move', '-c', file, '--data-dir', copy, '-d', 'other', '--to', 'new');
    assert.equal(live.code, 1);
    assert.match(live.stderr, /--force to move it anyway/);

    const capped = await queue('move', '-c', file, '--data-dir', copy, '-d', 'old', '--to', 'new');
    assert.equal(capped.code, 1);
    assert.match(capped.stdout, /^moved 3 queued entries to "new"$/m);
    assert.match(
      capped.stderr,
      /^left 2 entries on "old": the queue of "new" is at its cap \(queue\.max_events 3, queue\.max_bytes 268435456\); move again once it has drained$/m,
    );
    assert.deepEqual(queuedUuids(copy, 'new'), uuids.slice(0, 3), 'the oldest first');
    assert.deepEqual(queuedUuids(copy, 'old'), uuids.slice(3));
    const moved = query<{ attempts: number; due_at: number; leased: number }>(
      copy,
      "SELECT attempts, due_at, leased FROM deliveries WHERE destination = 'new'",
    );
    assert.ok(
      moved.every((r) => r.attempts === 0 && r.leased === 0 && r.due_at <= Date.now()),
      'due now, fresh budget',
    );
    const again = await queue('move', '-c', file, '--data-dir', copy, '-d', 'old', '--to', 'new');
    assert.match(again.stdout, /^moved 0 queued entries to "new"$/m);
    assert.equal(queuedUuids(copy, 'new').length, 3);
    assert.deepEqual(refs(), [2, 2, 2, 2, 2]);

    // Without a config: no cap. Every event is queued for other already: deleted from old, not queued twice.
    const dup = await queue('move', '--data-dir', copy, '-d', 'old', '--to', 'other');
    assert.equal(dup.code, 0, dup.stderr);
    assert.match(dup.stdout, /^moved 0 queued entries to "other", deleted 2 already queued there$/m);
    assert.deepEqual(queuedUuids(copy, 'old'), []);
    assert.deepEqual(sorted(queuedUuids(copy, 'other')), sorted(uuids));
    assert.deepEqual(refs(), [2, 2, 2, 1, 1]);

    // The moved entries are delivered by an engine of the new config, each once (other's retries due now).
    write(copy, 'UPDATE deliveries SET due_at = 0');
    const te = startEngine(
      configFromYamlIn(
        copy,
        'destinations:\n  - { name: new, type: stdout }\n  - { name: other, type: stdout }\n',
      ),
      { new: new FakeDestination('new', succeed), other: new FakeDestination('other', succeed) },
      copy,
    );
    try {
      await waitUntil(
        () => te.fakes.new!.delivered.length >= 3 && te.fakes.other!.delivered.length >= 5,
        5000,
        () => `new ${te.fakes.new!.delivered.length}/3, other ${te.fakes.other!.delivered.length}/5`,
      );
      await sleep(100);
      assert.deepEqual(sorted(te.fakes.new!.delivered), sorted(uuids.slice(0, 3)));
      assert.deepEqual(sorted(te.fakes.other!.delivered), sorted(uuids));
    } finally {
      await te.close();
    }
    assert.equal(count(copy, 'events'), 0);
  });

  it('while the engine runs: a move is delivered by it; a forced purge leaves the entries being sent', async (t) => {
    const { copy } = renamed(t);
    write(copy, 'UPDATE deliveries SET due_at = 0'); // other's retries due now
    const newSink = new FakeDestination('new', succeed);
    const other = new FakeDestination('other', hang);
    const liveCfg = configFromYamlIn(
      copy,
      `delivery: { shutdown_timeout: 200ms }\ndestinations:\n  - { name: new, type: stdout }\n  - { name: other, type: stdout, queue: { concurrency: 1 }, batch: { max_events: 1 } }\n`,
    );
    const te = startEngine(liveCfg, { new: newSink, other }, copy);
    try {
      const move = await queue('move', '--data-dir', copy, '-d', 'old', '--to', 'new');
      assert.equal(move.code, 0, move.stderr);
      assert.match(move.stdout, /^moved 5 queued entries to "new"$/m);
      await waitUntil(
        () => newSink.delivered.length >= 5,
        5000,
        () => `${newSink.delivered.length}/5 delivered by the running engine`,
      );
      assert.deepEqual(sorted(newSink.delivered), sorted(uuids));

      // other hangs on its first send, with more entries claimed ahead: all leased, being sent.
      await waitUntil(
        () => other.inFlight > 0,
        5000,
        () => 'a send of other in flight',
      );
      const purge = await queue('purge', '--data-dir', copy, '-d', 'other');
      assert.equal(purge.code, 1, purge.stderr);
      const left = Number(
        /^left (\d+) entries of "other": a running Eyrie is sending them now/m.exec(purge.stderr)?.[1],
      );
      assert.ok(left >= 1, purge.stderr);
      assert.match(purge.stdout, new RegExp(`^purged ${5 - left} queued entries$`, 'm'));
      assert.equal(queuedUuids(copy, 'other').length, left);
      assert.ok(
        other.sends.every((s) => queuedUuids(copy, 'other').includes(s.uuids[0]!)),
        'the one being sent is left',
      );
    } finally {
      await te.close();
    }
    // Once no server holds the journal, leases left behind are not in the way.
    write(copy, "UPDATE deliveries SET leased = 99 WHERE destination = 'other'");
    const after = await queue('purge', '--data-dir', copy, '-d', 'other');
    assert.equal(after.code, 0, after.stderr);
    assert.deepEqual(queuedUuids(copy, 'other'), []);
  });
});

/** Runs a statement that writes on the data dir's database. */
function write(dataDir: string, sql: string): void {
  const db = openSqlite(join(dataDir, 'eyrie.db'), { fileMustExist: true });
  try {
    db.prepare(sql).run();
  } finally {
    db.close();
  }
}

/** A config over the data dir `dataDir`. */
function configFromYamlIn(dataDir: string, yaml: string): EyrieConfig {
  return configFromYaml(`log: { level: silent }\nstorage: { path: ${JSON.stringify(dataDir)} }\n${yaml}`);
}
