import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendFileSync,
  closeSync,
  copyFileSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { FileSourceConfig } from '../src/config/types.ts';
import { Metrics } from '../src/metrics/registry.ts';
import { Pipeline } from '../src/routing/pipeline.ts';
import { FileSource } from '../src/sources/file/tail.ts';
import { MAX_LINE_BYTES } from '../src/sources/line-batcher.ts';
import { tempDir } from './helpers/config-file.ts';
import { eventLines, metricValue, sleep, waitUntil } from './helpers/delivery.ts';
import { CaptureRouter, refusingRouter, silentLogger, identityEnricher } from './helpers/ingest.ts';

const POLL_MS = 20;

interface Harness {
  dir: string;
  path: string;
  dataDir: string;
  router: CaptureRouter;
  metrics: Metrics;
  /** A started FileSource on `path` (closed after the test). */
  source(options?: Partial<FileSourceConfig>, router?: CaptureRouter): FileSource;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function harness(): Harness {
  const dir = tempDir('eyrie-file-source-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const router = new CaptureRouter();
  const metrics = new Metrics({ defaultMetrics: false });
  const path = join(dir, 'falco_events.json');
  const dataDir = join(dir, 'data');
  return {
    dir,
    path,
    dataDir,
    router,
    metrics,
    source(options = {}, sourceRouter = router) {
      const pipeline = new Pipeline(identityEnricher, sourceRouter, silentLogger);
      const source = new FileSource(
        { path, start_at: 'beginning', poll_interval: POLL_MS, ...options },
        { pipeline, metrics, logger: silentLogger, dataDir },
      );
      source.start();
      cleanups.push(() => source.close());
      return source;
    },
  };
}

function uuidOf(line: string): string {
  return (JSON.parse(line) as { uuid: string }).uuid;
}

function received(router: CaptureRouter): string[] {
  return router.events.map((e) => e.uuid);
}

async function waitForEvents(router: CaptureRouter, count: number, timeoutMs = 5000): Promise<void> {
  await waitUntil(
    () => router.events.length >= count,
    timeoutMs,
    () => `${router.events.length} of ${count} events`,
  );
}

/** Waits a few polls, so that anything the source would wrongly read has had its chance. */
function settle(): Promise<void> {
  return sleep(POLL_MS * 6);
}

function savedOffset(dataDir: string): { offset: number; ino: string } {
  const [file] = readdirSync(join(dataDir, 'sources')).filter((f) => f.endsWith('.json'));
  return JSON.parse(readFileSync(join(dataDir, 'sources', file!), 'utf8')) as { offset: number; ino: string };
}

async function accepted(metrics: Metrics, outcome: 'accepted' | 'rejected'): Promise<number> {
  return metricValue(await metrics.text(), 'eyrie_ingest_events_total', { source: 'file', outcome });
}

describe('file source', { timeout: 90_000 }, () => {
  it('reads lines appended over time, each once, in order', async () => {
    const h = harness();
    const lines = eventLines(60, 101);
    writeFileSync(h.path, lines.slice(0, 10).join('\n') + '\n');
    const source = h.source();
    assert.equal(source.kind, 'file');
    assert.equal(source.target, h.path);
    await waitForEvents(h.router, 10);
    assert.equal(source.ready(), true);
    for (let i = 10; i < 60; i += 10) {
      appendFileSync(h.path, lines.slice(i, i + 10).join('\n') + '\n');
      await sleep(POLL_MS * 2);
    }
    await waitForEvents(h.router, 60);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
    assert.equal(await accepted(h.metrics, 'accepted'), 60);
  });

  it('takes a poll_interval longer than a Node timer without polling every millisecond', async () => {
    // Past 2^31-1 ms Node fires a timer after 1 ms, with a TimeoutOverflowWarning each time.
    const h = harness();
    writeFileSync(h.path, '');
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    cleanups.push(() => void process.off('warning', onWarning));
    h.source({ poll_interval: 30 * 24 * 3600 * 1000 });
    await settle();
    assert.deepEqual(warnings, []);
  });

  it('waits for the newline of a partial last line', async () => {
    const h = harness();
    const [first, second] = eventLines(2, 102);
    writeFileSync(h.path, `${first}\n${second!.slice(0, 100)}`);
    h.source();
    await waitForEvents(h.router, 1);
    await settle();
    assert.equal(h.router.events.length, 1);
    appendFileSync(h.path, `${second!.slice(100)}\n`);
    await waitForEvents(h.router, 2);
    await settle();
    assert.deepEqual(received(h.router), [uuidOf(first!), uuidOf(second!)]);
  });

  it('counts and skips invalid lines and blank lines without blocking the rest', async () => {
    const h = harness();
    const lines = eventLines(4, 103);
    writeFileSync(
      h.path,
      [
        lines[0],
        'not json at all',
        '',
        '   ',
        lines[1],
        '{"rule":"only a rule"}',
        lines[2],
        `${lines[3]}\r`, // CRLF
      ].join('\n') + '\n',
    );
    h.source();
    await waitForEvents(h.router, 4);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
    assert.equal(await accepted(h.metrics, 'rejected'), 2);
    assert.equal(await accepted(h.metrics, 'accepted'), 4);
  });

  it('rejects a line longer than the limit and reads on', async () => {
    const h = harness();
    const [before, after] = eventLines(2, 104);
    writeFileSync(h.path, `${before}\n`);
    h.source();
    await waitForEvents(h.router, 1);
    // Written in pieces, as a writer would, so the source sees the line grow past the limit.
    const huge = `{"rule":"${'x'.repeat(MAX_LINE_BYTES + 10)}"}`;
    appendFileSync(h.path, huge.slice(0, MAX_LINE_BYTES / 2));
    await sleep(POLL_MS * 3);
    appendFileSync(h.path, `${huge.slice(MAX_LINE_BYTES / 2)}\n${after}\n`);
    await waitForEvents(h.router, 2);
    assert.deepEqual(received(h.router), [uuidOf(before!), uuidOf(after!)]);
    assert.equal(await accepted(h.metrics, 'rejected'), 1);
  });

  it('follows rename-and-create rotation while the writer keeps writing: no loss, no duplicates', async () => {
    const h = harness();
    const lines = eventLines(100, 105);
    // A writer holding the file open (Falco with keep_alive: true until it is told to reopen).
    let fd = openSync(h.path, 'a');
    h.source();
    for (let i = 0; i < 40; i++) {
      writeSync(fd, `${lines[i]}\n`);
      if (i % 8 === 0) await sleep(5);
    }
    await waitForEvents(h.router, 20);
    renameSync(h.path, `${h.path}.1`);
    // Still going to the old file until the writer reopens the path.
    for (let i = 40; i < 50; i++) writeSync(fd, `${lines[i]}\n`);
    await sleep(POLL_MS * 2);
    for (let i = 50; i < 55; i++) writeSync(fd, `${lines[i]}\n`);
    closeSync(fd);
    fd = openSync(h.path, 'a');
    for (let i = 55; i < 100; i++) {
      writeSync(fd, `${lines[i]}\n`);
      if (i % 8 === 0) await sleep(5);
    }
    closeSync(fd);
    await waitForEvents(h.router, 100);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
    assert.equal(savedOffset(h.dataDir).ino, String(statSync(h.path).ino));
  });

  it('keeps reading the old file while the writer appends to it after the rename, until it reopens the path', async () => {
    const h = harness();
    const lines = eventLines(70, 110);
    // Falco's file_output with keep_alive: true writes to the renamed file until logrotate's
    // postrotate tells it to reopen (SIGUSR1): here a third of a second, many polls.
    let fd = openSync(h.path, 'a');
    h.source();
    for (let i = 0; i < 20; i++) writeSync(fd, `${lines[i]}\n`);
    await waitForEvents(h.router, 20);
    renameSync(h.path, `${h.path}.1`);
    writeFileSync(h.path, ''); // logrotate's `create`
    for (let i = 20; i < 50; i++) {
      writeSync(fd, `${lines[i]}\n`);
      await sleep(10);
    }
    closeSync(fd);
    fd = openSync(h.path, 'a');
    for (let i = 50; i < 70; i++) writeSync(fd, `${lines[i]}\n`);
    closeSync(fd);
    await waitForEvents(h.router, 70);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
  });

  it('waits the full quiet period for a new file even after another one came and went', async () => {
    const h = harness();
    const lines = eventLines(40, 112);
    const fd = openSync(h.path, 'a');
    h.source();
    for (let i = 0; i < 10; i++) writeSync(fd, `${lines[i]}\n`);
    await waitForEvents(h.router, 10);
    // A file appears at the path and goes away again within the quiet period.
    renameSync(h.path, `${h.path}.1`);
    writeFileSync(h.path, '');
    await sleep(200);
    unlinkSync(h.path);
    await sleep(2500);
    // Then the real rotation's new file, while the writer still appends to the old one.
    writeFileSync(h.path, '');
    await sleep(300);
    for (let i = 10; i < 40; i++) {
      writeSync(fd, `${lines[i]}\n`);
      await sleep(30);
    }
    closeSync(fd);
    await waitForEvents(h.router, 40);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
  });

  it('reads the file again from the start after copytruncate', async () => {
    const h = harness();
    const lines = eventLines(60, 106);
    writeFileSync(h.path, lines.slice(0, 20).join('\n') + '\n');
    h.source();
    await waitForEvents(h.router, 20);
    // logrotate copytruncate: copy, then truncate in place (same inode), then the writer appends.
    copyFileSync(h.path, `${h.path}.1`);
    truncateSync(h.path, 0);
    appendFileSync(h.path, lines.slice(20, 25).join('\n') + '\n');
    await waitForEvents(h.router, 25);
    appendFileSync(h.path, lines.slice(25, 60).join('\n') + '\n');
    await waitForEvents(h.router, 60);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
  });

  it('copytruncate: lines written since the last read are read from the copy, before the truncated file', async () => {
    const h = harness();
    const lines = eventLines(40, 111);
    writeFileSync(h.path, lines.slice(0, 20).join('\n') + '\n');
    h.source();
    await waitForEvents(h.router, 20);
    // Within one poll: Falco appends, logrotate copies and truncates, Falco appends to the empty file.
    appendFileSync(h.path, lines.slice(20, 25).join('\n') + '\n');
    copyFileSync(h.path, `${h.path}.1`);
    truncateSync(h.path, 0);
    appendFileSync(h.path, lines.slice(25, 40).join('\n') + '\n');
    await waitForEvents(h.router, 40);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
  });

  it('copytruncate while a long read waits for the journal: the new file is read once, from its start', async () => {
    const h = harness();
    const before = eventLines(3000, 501);
    const after = eventLines(3000, 502);
    writeFileSync(h.path, before.join('\n') + '\n');
    let open!: () => void;
    h.router.gate = new Promise((resolve) => (open = resolve));
    h.source();
    await waitUntil(
      () => h.router.calls >= 1,
      5000,
      () => 'the first batch is waiting',
    );
    // While the first batch waits: logrotate copytruncate, then Falco writes past the old read position.
    truncateSync(h.path, 0);
    appendFileSync(h.path, after.join('\n') + '\n');
    h.router.gate = undefined;
    open();
    const wanted = new Set(after.map(uuidOf));
    const newOnes = () => received(h.router).filter((u) => wanted.has(u));
    await waitUntil(
      () => newOnes().length >= after.length,
      10_000,
      () => `${newOnes().length} of ${after.length} new lines`,
    );
    await settle();
    assert.deepEqual(newOnes(), after.map(uuidOf), 'each new line once, in order');
    assert.equal(
      await accepted(h.metrics, 'rejected'),
      0,
      'no line made of the old file joined to the new one',
    );
  });

  it('resumes exactly at the saved offset after a restart', async () => {
    const h = harness();
    const lines = eventLines(40, 107);
    writeFileSync(h.path, lines.slice(0, 20).join('\n') + '\n' + lines[20]!.slice(0, 50));
    const first = h.source();
    await waitForEvents(h.router, 20);
    await first.close();
    assert.equal(first.ready(), false);
    const offset = savedOffset(h.dataDir).offset;
    assert.equal(offset, Buffer.byteLength(lines.slice(0, 20).join('\n') + '\n'));
    appendFileSync(h.path, lines[20]!.slice(50) + '\n' + lines.slice(21, 40).join('\n') + '\n');
    const second = h.source();
    await waitForEvents(h.router, 40);
    await settle();
    await second.close();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
    assert.equal(savedOffset(h.dataDir).offset, statSync(h.path).size);
  });

  it('reads the rest of a file rotated while stopped, then the new one from its start', async () => {
    const h = harness();
    const lines = eventLines(30, 108);
    writeFileSync(h.path, lines.slice(0, 10).join('\n') + '\n');
    const first = h.source();
    await waitForEvents(h.router, 10);
    await first.close();
    // Written after Eyrie stopped, then rotated away (logrotate's `path.1`) before it started again.
    appendFileSync(h.path, lines.slice(10, 15).join('\n') + '\n');
    renameSync(h.path, `${h.path}.1`);
    writeFileSync(h.path, lines.slice(15, 30).join('\n') + '\n');
    h.source();
    await waitForEvents(h.router, 30);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
  });

  it('reads a file truncated while stopped from its start', async () => {
    const h = harness();
    const lines = eventLines(50, 109);
    writeFileSync(h.path, lines.slice(0, 10).join('\n') + '\n');
    const first = h.source();
    await waitForEvents(h.router, 10);
    await first.close();
    // Same inode, and longer than the saved offset by the time Eyrie is back.
    truncateSync(h.path, 0);
    appendFileSync(h.path, lines.slice(10, 50).join('\n') + '\n');
    h.source();
    await waitForEvents(h.router, 50);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
  });

  it('start_at end skips what is there, then keeps its offset across restarts', async () => {
    const h = harness();
    const lines = eventLines(20, 110);
    // Ends mid-line: that line is older than the start too.
    writeFileSync(h.path, lines.slice(0, 10).join('\n') + '\n' + lines[10]!.slice(0, 40));
    const first = h.source({ start_at: 'end' });
    await waitUntil(
      () => first.ready(),
      2000,
      () => 'source ready',
    );
    await settle();
    appendFileSync(h.path, lines[10]!.slice(40) + '\n' + lines.slice(11, 15).join('\n') + '\n');
    await waitForEvents(h.router, 4);
    await first.close();
    appendFileSync(h.path, lines.slice(15, 20).join('\n') + '\n');
    h.source({ start_at: 'end' });
    await waitForEvents(h.router, 9);
    await settle();
    assert.deepEqual(received(h.router), lines.slice(11, 20).map(uuidOf));
  });

  it('waits for a missing file, then reads it from its start (even with start_at end)', async () => {
    const h = harness();
    const lines = eventLines(10, 111);
    const source = h.source({ start_at: 'end' });
    await settle();
    assert.equal(source.ready(), false);
    writeFileSync(h.path, lines.slice(0, 5).join('\n') + '\n');
    await waitForEvents(h.router, 5);
    assert.equal(source.ready(), true);
    // Deleted and created again: the new file is read from its start, the old handle let go.
    unlinkSync(h.path);
    await waitUntil(
      () => !source.ready(),
      2000,
      () => 'source waiting again',
    );
    writeFileSync(h.path, lines.slice(5, 10).join('\n') + '\n');
    await waitForEvents(h.router, 10);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
  });

  it('retries while the journal refuses lines, then takes each once', async () => {
    const h = harness();
    const lines = eventLines(10, 112);
    writeFileSync(h.path, lines.join('\n') + '\n');
    const flaky = refusingRouter(3);
    h.source({}, flaky);
    await waitForEvents(flaky, 10);
    await settle();
    assert.equal(flaky.calls, 4);
    assert.deepEqual(received(flaky), lines.map(uuidOf));
    assert.equal(await accepted(h.metrics, 'accepted'), 10);
  });

  it('keeps its offset while the journal refuses lines: closed then restarted, nothing is lost', async () => {
    const h = harness();
    const lines = eventLines(30, 113);
    writeFileSync(h.path, lines.slice(0, 10).join('\n') + '\n');
    const first = h.source();
    await waitForEvents(h.router, 10);
    await first.close();
    const offset = savedOffset(h.dataDir).offset;
    assert.equal(offset, statSync(h.path).size);

    appendFileSync(h.path, lines.slice(10, 20).join('\n') + '\n');
    const refusing = refusingRouter(Infinity);
    const stuck = h.source({}, refusing);
    await waitUntil(
      () => refusing.calls >= 3,
      5000,
      () => `${refusing.calls} calls`,
    );
    assert.equal(savedOffset(h.dataDir).offset, offset);
    await stuck.close();
    assert.equal(savedOffset(h.dataDir).offset, offset);

    appendFileSync(h.path, lines.slice(20, 30).join('\n') + '\n');
    h.source();
    await waitForEvents(h.router, 30);
    await settle();
    assert.deepEqual(received(h.router), lines.map(uuidOf));
    assert.equal(await accepted(h.metrics, 'accepted'), 30);
  });
});
