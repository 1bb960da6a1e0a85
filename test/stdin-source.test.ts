import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { Metrics } from '../src/metrics/registry.ts';
import { Pipeline } from '../src/routing/pipeline.ts';
import { StdinSource } from '../src/sources/stdin.ts';
import { eventLines, metricValue, sleep, waitUntil } from './helpers/delivery.ts';
import { CaptureRouter, refusingRouter, silentLogger, identityEnricher } from './helpers/ingest.ts';
import { warningsLogger } from './helpers/log-capture.ts';

function setup(router = new CaptureRouter()) {
  const input = new PassThrough();
  const metrics = new Metrics({ defaultMetrics: false });
  const pipeline = new Pipeline(identityEnricher, router, silentLogger);
  let ended = 0;
  const source = new StdinSource(
    { pipeline, metrics, logger: silentLogger, dataDir: '/nonexistent' },
    input,
    () => {
      ended++;
    },
  );
  return {
    input,
    router,
    metrics,
    source,
    ended: () => ended,
    count: async (outcome: string) =>
      metricValue(await metrics.text(), 'eyrie_ingest_events_total', { source: 'stdin', outcome }),
  };
}

function uuidOf(line: string): string {
  return (JSON.parse(line) as { uuid: string }).uuid;
}

describe('stdin source', { timeout: 60_000 }, () => {
  it('reads JSON lines as they come, and a last line without newline at the end of input', async () => {
    const t = setup();
    const lines = eventLines(5, 201);
    t.source.start();
    assert.equal(t.source.kind, 'stdin');
    assert.equal(t.source.target, '-');
    assert.equal(t.source.ready(), true);
    t.input.write(`${lines[0]}\n`);
    await waitUntil(
      () => t.router.events.length === 1,
      2000,
      () => 'first line',
    );
    // A line split across writes, as a pipe delivers it.
    t.input.write(lines[1]!.slice(0, 30));
    await sleep(20);
    assert.equal(t.router.events.length, 1);
    t.input.write(`${lines[1]!.slice(30)}\n${lines[2]}\n${lines[3]}\n`);
    t.input.end(lines[4]);
    await waitUntil(
      () => t.ended() === 1,
      2000,
      () => 'onEnd',
    );
    assert.deepEqual(
      t.router.events.map((e) => e.uuid),
      lines.map(uuidOf),
    );
    assert.equal(t.source.ready(), false);
    assert.equal(await t.count('accepted'), 5);
    await t.source.close();
  });

  it('counts and skips invalid lines', async () => {
    const t = setup();
    const lines = eventLines(2, 202);
    t.source.start();
    t.input.end(`${lines[0]}\nnot json\n\n{"rule":"r","priority":"Bogus"}\n${lines[1]}\n`);
    await waitUntil(
      () => t.ended() === 1,
      2000,
      () => 'onEnd',
    );
    assert.deepEqual(
      t.router.events.map((e) => e.uuid),
      lines.map(uuidOf),
    );
    assert.equal(await t.count('rejected'), 2);
    assert.equal(await t.count('accepted'), 2);
  });

  it('pauses the input while a batch is in flight and retries refused batches', async () => {
    const router = new CaptureRouter();
    const t = setup(router);
    const lines = eventLines(20, 203);
    let open!: () => void;
    router.gate = new Promise<void>((resolve) => (open = resolve));
    router.refusals = 2;
    t.source.start();
    t.input.write(`${lines[0]}\n`);
    await waitUntil(
      () => router.calls === 1,
      2000,
      () => 'first accept',
    );
    // Nothing more is read while the pipeline has not answered: the pipe fills up instead.
    for (const line of lines.slice(1)) t.input.write(`${line}\n`);
    await sleep(30);
    assert.equal(t.input.isPaused(), true);
    assert.equal(router.calls, 1);
    open();
    t.input.end();
    await waitUntil(
      () => t.ended() === 1,
      5000,
      () => 'onEnd',
    );
    assert.deepEqual(
      router.events.map((e) => e.uuid),
      lines.map(uuidOf),
    );
    assert.equal(await t.count('accepted'), 20);
  });

  it('counts every line lost at close while the journal refuses: the batch held, the lines read behind it', async () => {
    const { logger, warnings } = warningsLogger();
    const router = refusingRouter(Infinity);
    const input = new PassThrough();
    const pipeline = new Pipeline(identityEnricher, router, silentLogger);
    const source = new StdinSource(
      { pipeline, metrics: new Metrics({ defaultMetrics: false }), logger, dataDir: '/nonexistent' },
      input,
    );
    const lines = eventLines(6, 205);
    source.start();
    input.write(`${lines[0]}\n`);
    await waitUntil(
      () => router.calls >= 1,
      2000,
      () => 'first batch offered',
    );
    // Behind it, while the input is paused: five lines and half of a sixth.
    input.write(`${lines.slice(1, 5).join('\n')}\n${lines[5]!.slice(0, 40)}`);
    await sleep(20);
    await source.close();
    const lost = warnings.filter((w) => String(w.msg).includes('they are lost')).map((w) => w.lines);
    assert.deepEqual(lost, [1, 5]);
  });

  it('stops reading on close without calling onEnd', async () => {
    const t = setup();
    const lines = eventLines(2, 204);
    t.source.start();
    t.input.write(`${lines[0]}\n`);
    await waitUntil(
      () => t.router.events.length === 1,
      2000,
      () => 'first line',
    );
    await t.source.close();
    assert.equal(t.source.ready(), false);
    t.input.write(`${lines[1]}\n`);
    await sleep(30);
    assert.equal(t.router.events.length, 1);
    assert.equal(t.ended(), 0);
  });
});
