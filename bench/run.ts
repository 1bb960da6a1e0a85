/**
 * `npm run bench`: Eyrie's performance, always as a ratio to a baseline measured in the same run.
 *
 * 1. Ingest: single-event POSTs (as Falco's http_output sends them), keep-alive, many connections, for
 *    a bare node:http + JSON.parse server, Eyrie with no destination, and Eyrie with a durable
 *    destination (every event committed to the journal before the 200). Rounds alternate servers so
 *    machine noise hits all alike.
 * 2. Delivery: events/s delivered to a local webhook sink with 1 and 4 workers; ingest-to-delivery
 *    latency at a steady 2,000 events/s; resident memory while ingesting 10,000 events/s.
 *
 *   npm run bench [-- --connections 50 --duration 8 --rounds 3 --only ingest|delivery]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Agent, request } from 'undici';
import { generateEvents } from '../test/helpers/events.ts';
import { mean, percentile, startServer, type Server } from './lib.ts';
import { startSink } from './sink.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const connections = opt('connections', 50);
const duration = opt('duration', 8);
const rounds = opt('rounds', 3);

function eyrieConfig(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'eyrie-bench-'));
  const file = join(dir, 'eyrie.yaml');
  writeFileSync(
    file,
    `listen:\n  address: 127.0.0.1\n  port: 0\nlog:\n  level: info\nstorage:\n  path: ${dir}/data\n${body}`,
  );
  return file;
}

const startEyrie = (body: string): Promise<Server> =>
  startServer(['bin/eyrie.js', 'serve', '-c', eyrieConfig(body)]);

interface LoadResult {
  rps: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(port: number, bodies: string[], seconds = duration): Promise<LoadResult> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/`,
    connections,
    duration: seconds,
    requests: bodies.map((body) => ({
      method: 'POST',
      path: '/',
      headers: { 'content-type': 'application/json' },
      body,
    })),
  });
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
  };
}

async function ingestBench(bodies: string[]): Promise<void> {
  console.log(
    `\n## ingest: ${connections} connections, ${duration}s per round, ${rounds} rounds, ${bodies.length} distinct events`,
  );
  const servers: [string, Server][] = [
    ['node:http', await startServer(['bench/baseline-server.mjs', '0'])],
    ['eyrie (no destination)', await startEyrie('')],
    [
      'eyrie (durable: journaled for one destination)',
      // The destination is down, so the numbers are ingest + journal commit alone; its worker backs off.
      await startEyrie(
        'destinations:\n  - name: down\n    type: webhook\n    address: http://127.0.0.1:9/\n    retry: { initial_interval: 30s, max_interval: 60s }\n',
      ),
    ],
  ];
  const results = new Map<string, LoadResult[]>(servers.map(([name]) => [name, []]));
  try {
    for (const [, s] of servers) await load(s.port, bodies.slice(0, 100), 2); // warm-up
    for (let r = 1; r <= rounds; r++) {
      const line: string[] = [];
      for (const [name, s] of servers) {
        const res = await load(s.port, bodies);
        results.get(name)!.push(res);
        line.push(
          `${name} ${res.rps.toFixed(0)} req/s p99 ${res.p99} ms${res.errors + res.non2xx > 0 ? ` (errors ${res.errors}, non-2xx ${res.non2xx})` : ''}`,
        );
      }
      console.log(`round ${r}: ${line.join(' | ')}`);
    }
  } finally {
    for (const [, s] of servers) await s.stop();
  }
  const base = mean(results.get('node:http')!.map((x) => x.rps));
  for (const [name, rs] of results) {
    const rps = mean(rs.map((x) => x.rps));
    console.log(
      `summary ${name}: ${rps.toFixed(0)} req/s, p99 ${mean(rs.map((x) => x.p99)).toFixed(1)} ms, ratio to node:http ${(rps / base).toFixed(3)}`,
    );
  }
  console.log('targets: eyrie (no destination) >= 0.85, eyrie (durable) >= 0.80');
}

async function postNdjson(url: string, lines: string[], batch: number, agent: Agent): Promise<void> {
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
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`ingest answered ${res.statusCode}`);
    }),
  );
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function deliveryBench(): Promise<void> {
  console.log('\n## delivery to a local webhook sink');
  const agent = new Agent({ connections: 8 });
  try {
    const lines = generateEvents(20_000, { seed: 17 });
    for (const workers of [1, 4]) {
      const sink = await startSink();
      const eyrie = await startEyrie(
        `destinations:\n  - name: sink\n    type: webhook\n    address: ${sink.url}\n    queue: { concurrency: ${workers} }\n`,
      );
      try {
        const url = `http://127.0.0.1:${eyrie.port}/`;
        await postNdjson(url, lines.slice(0, 1000), 500, agent);
        await waitFor(() => sink.count() >= 1000, 60_000);
        const started = performance.now();
        await postNdjson(url, lines, 500, agent);
        await waitFor(() => sink.count() >= 1000 + lines.length, 300_000);
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `delivered ${lines.length} events with ${workers} worker(s) in ${seconds.toFixed(2)} s: ${(lines.length / seconds).toFixed(0)} events/s`,
        );
      } finally {
        await eyrie.stop();
        await sink.close();
      }
    }

    // Ingest-to-delivery latency at a steady rate, one event per request as Falco sends them.
    const sink = await startSink();
    const eyrie = await startEyrie(
      `destinations:\n  - name: sink\n    type: webhook\n    address: ${sink.url}\n    queue: { concurrency: 4 }\n`,
    );
    try {
      const url = `http://127.0.0.1:${eyrie.port}/`;
      const steady = generateEvents(20_000, { seed: 23, extra: ['--uuid'] });
      const sentAt = new Map<string, number>();
      const rate = 2000;
      const seconds = 8;
      const total = rate * seconds;
      const startedAt = performance.now();
      const inFlight = new Set<Promise<void>>();
      for (let i = 0; i < total; i++) {
        const due = startedAt + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const line = steady[i % steady.length]!;
        const uuid = /"uuid":"([0-9a-f-]{36})"/.exec(line)![1]!;
        const p = (async () => {
          sentAt.set(uuid, performance.now());
          const res = await request(url, {
            method: 'POST',
            body: line,
            headers: { 'content-type': 'application/json' },
            dispatcher: agent,
          });
          await res.body.text();
        })().finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await Promise.all(inFlight);
      await waitFor(() => sink.arrivals.size >= Math.min(total, steady.length), 60_000);
      const latencies = [...sink.arrivals].map(([uuid, at]) => at - sentAt.get(uuid)!).sort((a, b) => a - b);
      console.log(
        `ingest-to-delivery latency at ${rate} events/s for ${seconds} s: p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p99 ${percentile(latencies, 0.99).toFixed(1)} ms (${latencies.length} events)`,
      );
    } finally {
      await eyrie.stop();
      await sink.close();
    }

    // Resident memory while ingesting 10,000 events/s (batches of 100 every 10 ms) for 10 s.
    const sink2 = await startSink();
    const eyrie2 = await startEyrie(
      `destinations:\n  - name: sink\n    type: webhook\n    address: ${sink2.url}\n    queue: { concurrency: 4 }\n`,
    );
    try {
      const url = `http://127.0.0.1:${eyrie2.port}/`;
      const idle = eyrie2.rss();
      const batch = generateEvents(100, { seed: 29 });
      const startedAt = performance.now();
      let peak = idle;
      for (let tick = 0; tick < 1000; tick++) {
        const wait = startedAt + tick * 10 - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        void postNdjson(url, batch, 100, agent);
        if (tick % 50 === 0) peak = Math.max(peak, eyrie2.rss());
      }
      await waitFor(() => sink2.count() >= 100_000, 120_000);
      peak = Math.max(peak, eyrie2.rss());
      console.log(
        `resident memory at 10,000 events/s for 10 s: idle ${(idle / 1048576).toFixed(0)} MB, peak ${(peak / 1048576).toFixed(0)} MB; ${sink2.count()} delivered`,
      );
    } finally {
      await eyrie2.stop();
      await sink2.close();
    }
  } finally {
    await agent.close();
  }
}

const bodies = generateEvents(1000, { seed: 3 });
if (only === undefined || only === 'ingest') await ingestBench(bodies);
if (only === undefined || only === 'delivery') await deliveryBench();
