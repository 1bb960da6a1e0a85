import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startRecordingServer, type RecordedRequest } from './helpers/recording-server.ts';
import { generateEvents } from './helpers/events.ts';
import { writeConfig } from './helpers/config-file.ts';
import { spawnEyrie } from './helpers/eyrie-process.ts';
import { startEyrie } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { silentLogger } from './helpers/ingest.ts';
import { deadLetterRows, sleep, waitUntil } from './helpers/delivery.ts';

const uuidOf = (req: RecordedRequest): string => (JSON.parse(req.text) as { uuid: string }).uuid;
const uuidsOf = (lines: string[]) =>
  lines.map((l) => (JSON.parse(l.replace(/"evt\.time":\d+/, '"evt.time":0')) as { uuid: string }).uuid);

/** Posts NDJSON batches; resolves with the number of events acknowledged. */
async function postBatches(url: string, lines: string[], batch: number, agent: Agent): Promise<number> {
  let accepted = 0;
  const chunks: string[][] = [];
  for (let i = 0; i < lines.length; i += batch) chunks.push(lines.slice(i, i + batch));
  await Promise.all(
    chunks.map(async (chunk) => {
      const res = await request(url, {
        method: 'POST',
        body: chunk.join('\n'),
        headers: { 'content-type': 'application/x-ndjson' },
        dispatcher: agent,
      });
      const body = (await res.body.json()) as { accepted: number };
      assert.equal(res.statusCode, 200);
      accepted += body.accepted;
    }),
  );
  return accepted;
}

describe('durable delivery', { timeout: 300_000 }, () => {
  it('delivers every one of 10,000 events through a sink failing ~50% (503, resets, hangs past the timeout)', async (t) => {
    const sink = await startRecordingServer();
    t.after(() => sink.close());
    const delivered = new Set<string>();
    let failures = 0;
    sink.respondWith((req, i) => {
      switch (i % 6) {
        case 0:
          failures++;
          return { status: 503, body: 'busy' };
        case 1:
          failures++;
          return { reset: true };
        case 2:
          failures++;
          return { hang: true };
        default:
          delivered.add(uuidOf(req));
          return { status: 200 };
      }
    });
    const { file } = writeConfig(`
listen: { address: 127.0.0.1, port: 0 }
log: { level: warn }
destinations:
  - name: flaky
    type: webhook
    address: ${sink.url}
    queue: { concurrency: 24 }
    retry: { initial_interval: 10ms, max_interval: 100ms }
    request: { timeout: 150ms }
`);
    const eyrie = await startEyrie(loadConfig({ file, env: {} }).config, silentLogger);
    t.after(() => eyrie.close());
    const agent = new Agent({ connections: 8 });
    try {
      const lines = generateEvents(10_000, { seed: 21, extra: ['--uuid'] });
      const expected = new Set(uuidsOf(lines));
      assert.equal(expected.size, 10_000);
      assert.equal(await postBatches(eyrie.addresses.ingest! + '/', lines, 200, agent), 10_000);
      await waitUntil(
        () => delivered.size === expected.size,
        240_000,
        () => `${delivered.size}/${expected.size} delivered`,
      );
      for (const uuid of expected) assert.ok(delivered.has(uuid), uuid);
      assert.ok(failures > 5000, `the sink must have failed often (${failures})`);
      // The sink records a delivery as it answers; Eyrie counts it once the answer has arrived.
      let metrics = await eyrie.metrics.text();
      const deadline = Date.now() + 10_000;
      while (!/outcome="success",reason=""\} 10000\n/.test(metrics) && Date.now() < deadline) {
        await sleep(50);
        metrics = await eyrie.metrics.text();
      }
      assert.match(
        metrics,
        /eyrie_delivery_events_total\{destination="flaky",outcome="success",reason=""\} 10000/,
      );
      assert.match(
        metrics,
        /eyrie_delivery_events_total\{destination="flaky",outcome="retry",reason="503"\} \d+/,
      );
      assert.match(
        metrics,
        /eyrie_delivery_events_total\{destination="flaky",outcome="retry",reason="timeout"\} \d+/,
      );
      assert.doesNotMatch(metrics, /outcome="dead_letter"/);
    } finally {
      await agent.close();
    }
  });

  it('loses nothing that got a 200 when the process is SIGKILLed under load (at least once)', async (t) => {
    const sink = await startRecordingServer();
    t.after(() => sink.close());
    const received = new Map<string, number>();
    let killedAt = 0;
    sink.respondWith((req) => {
      const uuid = uuidOf(req);
      received.set(uuid, (received.get(uuid) ?? 0) + 1);
      // Slow until the kill, so that however fast the machine, some acked events are still queued
      // when the process dies and the restart has them to deliver.
      return killedAt === 0 ? { status: 200, delayMs: 20 } : { status: 200 };
    });
    const { file } = writeConfig(`
listen: { address: 127.0.0.1, port: 0 }
log: { level: warn }
destinations:
  - name: sink
    type: webhook
    address: ${sink.url}
    queue: { concurrency: 4 }
`);
    const lines = generateEvents(20_000, { seed: 5, extra: ['--uuid'] });
    const acked = new Set<string>();
    let eyrie = await spawnEyrie(file);
    const agent = new Agent({ connections: 32 });
    try {
      let next = 0;
      let killed = false;
      const worker = async () => {
        while (next < lines.length && !killed) {
          const line = lines[next++]!;
          try {
            const res = await request(eyrie.url, {
              method: 'POST',
              body: line,
              headers: { 'content-type': 'application/json' },
              dispatcher: agent,
            });
            await res.body.text();
            if (res.statusCode === 200) acked.add(uuidsOf([line])[0]!);
          } catch {
            // the process is gone: this one was never acknowledged
          }
        }
      };
      const load = Promise.all(Array.from({ length: 32 }, worker));
      await waitUntil(
        () => acked.size >= 3000,
        60_000,
        () => `${acked.size} acked`,
      );
      eyrie.child.kill('SIGKILL');
      killed = true;
      killedAt = Date.now();
      await eyrie.exited;
      await load;
      const atKill = new Set(received.keys());
      t.diagnostic(`acked ${acked.size}, delivered before the kill ${atKill.size}`);
      // The restart must have something to recover, or this test would prove nothing.
      const pending = [...acked].filter((u) => !atKill.has(u)).length;
      assert.ok(pending > 0, 'every acked event was delivered before the kill');
      eyrie = await spawnEyrie(file);
      await waitUntil(
        () => [...acked].every((u) => received.has(u)),
        120_000,
        () => `${[...acked].filter((u) => !received.has(u)).length} acked events not delivered`,
      );
      const duplicates = [...received.values()].filter((n) => n > 1).length;
      t.diagnostic(
        `after restart: ${acked.size} acked events all delivered (${pending} of them after it); ${duplicates} delivered more than once`,
      );
    } finally {
      await agent.close();
      eyrie.child.kill('SIGTERM');
      await eyrie.exited;
    }
  });

  it('on SIGTERM waits for a send in flight for the whole delivery.shutdown_timeout (31 s), then exits 0', async () => {
    const sink = await startRecordingServer();
    sink.respondWith(() => ({ hang: true }));
    const { file } = writeConfig(`
listen: { address: 127.0.0.1, port: 0 }
log: { level: info }
delivery: { shutdown_timeout: 31s }
destinations:
  - { name: stuck, type: webhook, address: ${sink.url}, request: { timeout: 60s } }
`);
    const eyrie = await spawnEyrie(file);
    try {
      const res = await request(eyrie.url, { method: 'POST', body: generateEvents(1, { seed: 12 })[0]! });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
      await sink.waitFor(1);
      const t0 = Date.now();
      eyrie.child.kill('SIGTERM');
      const code = await eyrie.exited;
      const took = Date.now() - t0;
      assert.equal(code, 0, eyrie.output());
      assert.ok(took >= 30_500, `waited for the send: exited after ${took} ms`);
      assert.doesNotMatch(eyrie.output(), /shutdown deadline passed/);
    } finally {
      eyrie.child.kill('SIGKILL');
      await sink.close();
    }
  });

  it('keeps a healthy destination fast while another one is dead', async () => {
    const healthy = await startRecordingServer();
    const dead = await startRecordingServer();
    dead.respondWith(() => ({ hang: true }));
    const arrival = new Map<string, number>();
    healthy.respondWith((req) => {
      arrival.set(uuidOf(req), Date.now());
      return { status: 200 };
    });
    const run = async (withDead: boolean, seed: number): Promise<number[]> => {
      const { file } = writeConfig(`
listen: { address: 127.0.0.1, port: 0 }
log: { level: error }
destinations:
  - name: healthy
    type: webhook
    address: ${healthy.url}
${
  withDead
    ? `  - name: dead
    type: webhook
    address: ${dead.url}
    queue: { concurrency: 4 }
    request: { timeout: 2s }`
    : ''
}
`);
      const eyrie = await startEyrie(loadConfig({ file, env: {} }).config, silentLogger);
      const agent = new Agent({ connections: 4 });
      const latencies: number[] = [];
      try {
        for (const line of generateEvents(300, { seed, extra: ['--uuid'] })) {
          const sent = Date.now();
          const res = await request(eyrie.addresses.ingest! + '/', {
            method: 'POST',
            body: line,
            headers: { 'content-type': 'application/json' },
            dispatcher: agent,
          });
          await res.body.text();
          const uuid = uuidsOf([line])[0]!;
          await waitUntil(
            () => arrival.has(uuid),
            10_000,
            () => `event ${uuid} not delivered`,
          );
          latencies.push(arrival.get(uuid)! - sent);
          await new Promise((r) => setTimeout(r, 2));
        }
      } finally {
        await agent.close();
        await eyrie.close();
      }
      return latencies.sort((a, b) => a - b);
    };
    let alone: number[];
    let beside: number[];
    try {
      alone = await run(false, 31);
      beside = await run(true, 32);
    } finally {
      await healthy.close();
      await dead.close();
    }
    const p50 = (xs: number[]) => xs[Math.floor(xs.length * 0.5)]!;
    const p95 = (xs: number[]) => xs[Math.floor(xs.length * 0.95)]!;
    assert.ok(
      p50(beside) <= Math.max(3 * p50(alone), p50(alone) + 20),
      `p50 alone ${p50(alone)} ms, beside a dead one ${p50(beside)} ms`,
    );
    assert.ok(
      p95(beside) <= Math.max(3 * p95(alone), p95(alone) + 50),
      `p95 alone ${p95(alone)} ms, beside a dead one ${p95(beside)} ms`,
    );
  });

  it('keeps the backlog of a dead destination on disk: 100,000 events, resident memory grows < 50 MB', async (t) => {
    const { file } = writeConfig(`
listen: { address: 127.0.0.1, port: 0 }
log: { level: error }
destinations:
  - name: down
    type: webhook
    address: http://127.0.0.1:9/
    retry: { initial_interval: 1s, max_interval: 5s }
    queue: { max_events: 200000 }
`);
    // V8 grows its heap lazily up to the limit, so an unbounded heap measures V8's appetite, not what
    // Eyrie keeps. A 64 MB old space (what a small container would set) shows what is retained: a
    // backlog held in memory could not fit, one on disk does. The young generation is pinned too: Node 24
    // sizes it up to 3 × 32 MB, which is V8's allocation buffer, not retained data.
    const eyrie = await spawnEyrie(file, { NODE_OPTIONS: '--max-old-space-size=64 --max-semi-space-size=8' });
    const agent = new Agent({ connections: 4 });
    try {
      const lines = generateEvents(5000, { seed: 9 });
      // Warm up (JIT, pools, SQLite cache) before taking the baseline.
      let accepted = await postBatches(eyrie.url, lines.slice(0, 2000), 500, agent);
      const before = eyrie.rss();
      let sent = 2000;
      while (sent < 100_000) {
        accepted += await postBatches(eyrie.url, lines, 500, agent);
        sent += lines.length;
      }
      assert.equal(accepted, sent);
      const grown = (eyrie.rss() - before) / 1024 / 1024;
      const metrics = await (
        await request(new URL('/metrics', eyrie.url), { dispatcher: agent })
      ).body.text();
      const depth = Number(/eyrie_queue_depth\{destination="down"\} (\d+)/.exec(metrics)?.[1]);
      t.diagnostic(`RSS grew ${grown.toFixed(1)} MB for ${sent} queued events; queue depth ${depth}`);
      // Nothing can be delivered and the cap is out of reach: every accepted event is still queued.
      assert.equal(depth, sent);
      assert.ok(grown < 50, `resident memory grew by ${grown.toFixed(1)} MB`);
    } finally {
      await agent.close();
      eyrie.child.kill('SIGTERM');
      assert.equal(await eyrie.exited, 0);
    }
  });
});

describe('secrets in delivery errors', () => {
  it('keeps credentials a receiver echoes in its error answer out of /healthz and dead letters', async (t) => {
    const sink = await startRecordingServer();
    t.after(() => sink.close());
    // A receiver that quotes the request it refuses, credentials and all (some gateways do).
    sink.respondWith((req) => ({ status: 401, body: `refused ${JSON.stringify(req.headers)}` }));
    const { file, dir } = writeConfig(`
listen: { address: 127.0.0.1, port: 0 }
log: { level: silent }
destinations:
  - name: bearer
    type: webhook
    address: ${sink.url}
    custom_headers: { X-Api-Key: api-key-value-1 }
    request: { auth: { bearer_token: bearer-token-2 } }
  - name: basic
    type: webhook
    address: ${sink.url.replace('://', '://user:url-password-3@')}
`);
    const eyrie = await startEyrie(loadConfig({ file, env: {} }).config, silentLogger);
    t.after(() => eyrie.close());
    const res = await request(eyrie.addresses.ingest! + '/', {
      method: 'POST',
      body: generateEvents(1, { seed: 7 })[0]!,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.statusCode, 200);
    await res.body.text();
    const dataDir = `${dir}/data`;
    await waitUntil(
      () => deadLetterRows(dataDir, 'bearer').length + deadLetterRows(dataDir, 'basic').length === 2,
      10_000,
      () => 'both destinations dead-letter the event',
    );
    const health = await (await request(eyrie.addresses.ingest! + '/healthz')).body.text();
    const stored = [...deadLetterRows(dataDir, 'bearer'), ...deadLetterRows(dataDir, 'basic')]
      .map((r) => r.error)
      .join('\n');
    const basic = Buffer.from('user:url-password-3').toString('base64');
    for (const [where, text] of [
      ['/healthz', health],
      ['dead letters', stored],
    ] as const) {
      assert.match(text, /HTTP 401: refused/, where);
      for (const secret of ['api-key-value-1', 'bearer-token-2', 'url-password-3', basic])
        assert.ok(!text.includes(secret), `${where} shows ${secret}: ${text}`);
    }
  });
});
