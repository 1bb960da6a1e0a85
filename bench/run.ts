/**
 * `npm run bench`: Eyrie's performance, always as a ratio to a baseline measured in the same run.
 *
 * 1. Ingest: single-event POSTs (as Falco's http_output sends them), keep-alive, many connections, for
 *    a bare node:http + JSON.parse server, Eyrie with no destination, and Eyrie with a durable
 *    destination (every event committed to the journal before the 200). Rounds alternate servers so
 *    machine noise hits all alike.
 * 2. Delivery: events/s delivered to a local webhook sink with 1 and 4 workers; ingest-to-delivery
 *    latency at a steady 2,000 events/s; resident memory while ingesting 10,000 events/s.
 * 3. The memory queue's operations with a full backlog against a short queue (bench/memory-queue.ts).
 *
 *   npm run bench [-- --connections 50 --duration 8 --rounds 3 --only ingest|delivery|memory-queue]
 *                 [-- --load-generator autocannon|wrk]
 *                 [-- --parts throughput,latency,memory --workers 1,4 --rate 2000 --seconds 8
 *                     --warmup 2 --delivery 'commit_interval: 1ms']
 *
 * The delivery options: which parts to run, the worker counts of the throughput part, the rate and
 * duration of the latency part and its warm-up at the same rate (not measured; 0 measures a cold
 * start, as before 2026-11-27), and keys for the `delivery:` section of Eyrie's config.
 *
 * The ingest load generator is autocannon in this process by default. `--load-generator wrk` uses
 * wrk (C, Debian package `wrk`) in a child process instead: it needs about half the CPU per request,
 * so on a small machine the servers get more of the shared cores, as they would with Falco's senders
 * on other nodes. wrk cannot hold a fixed rate, so that run skips the equal-rate row.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Agent, request } from 'undici';
import { generateEvents } from '../test/helpers/events.ts';
import { mean, percentile, startServer, type Server } from './lib.ts';
import { startSink } from './sink.ts';
import { memoryQueueBench } from './memory-queue.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const connections = opt('connections', 50);
const duration = opt('duration', 8);
const rounds = opt('rounds', 3);
const list = (name: string, fallback: string) =>
  (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : fallback).split(',');
const parts = new Set(list('parts', 'throughput,latency,memory'));
const workerCounts = list('workers', '1,4').map(Number);
const rate = opt('rate', 2000);
const seconds = opt('seconds', 8);
const warmup = opt('warmup', 2);
const deliveryKeys = args.includes('--delivery') ? args[args.indexOf('--delivery') + 1]! : '';
const loadGenerator = list('load-generator', 'autocannon')[0]!;
if (loadGenerator !== 'autocannon' && loadGenerator !== 'wrk') {
  throw new Error(`--load-generator ${loadGenerator}: use autocannon or wrk`);
}

function eyrieConfig(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'eyrie-bench-'));
  const file = join(dir, 'eyrie.yaml');
  writeFileSync(
    file,
    `listen:\n  address: 127.0.0.1\n  port: 0\nlog:\n  level: info\nstorage:\n  path: ${dir}/data\n${body}`,
  );
  return file;
}

/** Eyrie delivering to `sink` with `workers` workers (and the --delivery keys). */
const startDelivering = (sinkUrl: string, workers: number): Promise<Server> =>
  startEyrie(
    `${deliveryKeys ? `delivery: { ${deliveryKeys} }\n` : ''}destinations:\n  - name: sink\n    type: webhook\n    address: ${sinkUrl}\n    queue: { concurrency: ${workers} }\n`,
  );

/** CPU seconds (user + system) a child process has used so far: all its threads, or its main thread. */
function cpuSeconds(server: Server, mainThreadOnly = false): number {
  const pid = server.child.pid!;
  const file = mainThreadOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`;
  const fields = readFileSync(file, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const startEyrie = (body: string): Promise<Server> =>
  startServer(['bin/eyrie.js', 'serve', '-c', eyrieConfig(body)]);

interface LoadResult {
  rps: number;
  p99: number;
  errors: number;
  non2xx: number;
  /**
   * CPU time per request (µs) of the server (all threads, and its event loop's thread alone) and of
   * the load generator (this process, or the wrk child).
   */
  serverCpu: number;
  loopCpu: number;
  clientCpu: number;
}

interface GeneratorResult {
  rps: number;
  requests: number;
  p99: number;
  errors: number;
  non2xx: number;
  /** CPU seconds the load generator used. */
  cpu: number;
}

async function runAutocannon(
  port: number,
  bodies: string[],
  seconds: number,
  overallRate?: number,
): Promise<GeneratorResult> {
  const before = process.cpuUsage();
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/`,
    connections,
    duration: seconds,
    ...(overallRate ? { overallRate } : {}),
    requests: bodies.map((body) => ({
      method: 'POST',
      path: '/',
      headers: { 'content-type': 'application/json' },
      body,
    })),
  });
  const cpu = process.cpuUsage(before);
  return {
    rps: result.requests.average,
    requests: result.requests.total,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    cpu: (cpu.user + cpu.system) / 1e6,
  };
}

/** The bodies file and Lua script wrk posts them with, in turn (written once per list of bodies). */
const wrkScripts = new WeakMap<string[], string>();
function wrkScriptFor(bodies: string[]): string {
  const written = wrkScripts.get(bodies);
  if (written) return written;
  const dir = mkdtempSync(join(tmpdir(), 'eyrie-bench-wrk-'));
  writeFileSync(join(dir, 'bodies.ndjson'), `${bodies.join('\n')}\n`);
  const wrkScript = join(dir, 'post.lua');
  wrkScripts.set(bodies, wrkScript);
  writeFileSync(
    wrkScript,
    [
      'local bodies = {}',
      `for line in io.lines(${JSON.stringify(join(dir, 'bodies.ndjson'))}) do bodies[#bodies + 1] = line end`,
      'local i = 0',
      'wrk.method = "POST"',
      'wrk.headers["Content-Type"] = "application/json"',
      'request = function()',
      '  i = i % #bodies + 1',
      '  return wrk.format(nil, "/", nil, bodies[i])',
      'end',
      '',
    ].join('\n'),
  );
  return wrkScript;
}

/** wrk's latency figure ("850.00us", "1.20ms", "2.00s") in ms. */
function wrkMs(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text)!;
  return Number(m[1]) * (m[2] === 'us' ? 1e-3 : m[2] === 's' ? 1e3 : 1);
}

/** One wrk run; bash's `times` reports the CPU wrk used (its children's times) when it ends. */
function runWrk(port: number, bodies: string[], seconds: number): Promise<GeneratorResult> {
  const argv = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', wrkScriptFor(bodies)];
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', 'wrk "$@" && times', 'wrk', ...argv, `http://127.0.0.1:${port}/`]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const requests = /(\d+) requests in/.exec(out);
      const times = /\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(out);
      if (code !== 0 || !requests || !times) {
        reject(new Error(`wrk failed (is the Debian package wrk installed?): ${out.slice(-500)}`));
        return;
      }
      const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      resolve({
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]),
        requests: Number(requests[1]),
        p99: wrkMs(/ 99%\s+(\S+)/.exec(out)![1]!),
        errors: socketErrors ? socketErrors.slice(1).reduce((n, x) => n + Number(x), 0) : 0,
        non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
        cpu: Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]),
      });
    });
  });
}

async function load(
  server: Server,
  bodies: string[],
  seconds = duration,
  overallRate?: number,
): Promise<LoadResult> {
  const serverBefore = cpuSeconds(server);
  const loopBefore = cpuSeconds(server, true);
  if (loadGenerator === 'wrk' && overallRate !== undefined) throw new Error('wrk cannot hold a fixed rate');
  const result =
    loadGenerator === 'wrk'
      ? await runWrk(server.port, bodies, seconds)
      : await runAutocannon(server.port, bodies, seconds, overallRate);
  const requests = Math.max(1, result.requests);
  return {
    rps: result.rps,
    p99: result.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    serverCpu: ((cpuSeconds(server) - serverBefore) * 1e6) / requests,
    loopCpu: ((cpuSeconds(server, true) - loopBefore) * 1e6) / requests,
    clientCpu: (result.cpu * 1e6) / requests,
  };
}

async function ingestBench(bodies: string[]): Promise<void> {
  console.log(
    `\n## ingest: ${connections} connections, ${duration}s per round, ${rounds} rounds, ${bodies.length} distinct events, load generator ${loadGenerator}`,
  );
  const servers: [string, Server][] = [
    ['node:http', await startServer(['bench/baseline-server.mjs', '0'])],
    ['eyrie (no destination)', await startEyrie('')],
    [
      'eyrie (durable: journaled for one destination)',
      // The destination is down, so the numbers are ingest + journal commit alone; its worker backs
      // off. Its queue caps are out of reach: the default 100,000 events fill up within the run, and
      // from then on every commit also evicts the oldest entries (when_full), another measurement.
      await startEyrie(
        'destinations:\n  - name: down\n    type: webhook\n    address: http://127.0.0.1:9/\n    retry: { initial_interval: 30s, max_interval: 60s }\n    queue: { max_events: 100000000, max_bytes: 0 }\n',
      ),
    ],
  ];
  const results = new Map<string, LoadResult[]>(servers.map(([name]) => [name, []]));
  try {
    const warmupBodies = bodies.slice(0, 100);
    for (const [, s] of servers) await load(s, warmupBodies, 2); // warm-up
    for (let r = 1; r <= rounds; r++) {
      const line: string[] = [];
      for (const [name, s] of servers) {
        const res = await load(s, bodies);
        results.get(name)!.push(res);
        line.push(
          `${name} ${res.rps.toFixed(0)} req/s p99 ${res.p99} ms${res.errors + res.non2xx > 0 ? ` (errors ${res.errors}, non-2xx ${res.non2xx})` : ''}`,
        );
      }
      console.log(`round ${r}: ${line.join(' | ')}`);
    }
    // The same server without the journal, offered the durable run's request rate: per-request costs
    // grow as the rate falls (fewer requests per event-loop turn, the load generator on the same
    // cores), so the CPU difference at equal rates is what the journal itself costs per event.
    if (loadGenerator === 'autocannon') {
      const durable = results.get(servers[2]![0])!;
      const durableRps = mean(durable.map((x) => x.rps));
      const sameRate = await load(servers[1]![1], bodies, duration, Math.round(durableRps));
      const durableCpu = mean(durable.map((x) => x.serverCpu));
      const durableLoop = mean(durable.map((x) => x.loopCpu));
      console.log(
        `at the durable rate (${durableRps.toFixed(0)} req/s offered): eyrie (no destination) ${sameRate.rps.toFixed(0)} req/s, CPU per request: server ${sameRate.serverCpu.toFixed(1)} µs (event loop ${sameRate.loopCpu.toFixed(1)}), load generator ${sameRate.clientCpu.toFixed(1)} µs; the journal costs ${(durableCpu - sameRate.serverCpu).toFixed(1)} µs per event (event loop ${(durableLoop - sameRate.loopCpu).toFixed(1)})`,
      );
    }
  } finally {
    for (const [, s] of servers) await s.stop();
  }
  const base = mean(results.get('node:http')!.map((x) => x.rps));
  for (const [name, rs] of results) {
    const rps = mean(rs.map((x) => x.rps));
    console.log(
      `summary ${name}: ${rps.toFixed(0)} req/s, p99 ${mean(rs.map((x) => x.p99)).toFixed(1)} ms, ratio to node:http ${(rps / base).toFixed(3)}; CPU per request: server ${mean(rs.map((x) => x.serverCpu)).toFixed(1)} µs (event loop ${mean(rs.map((x) => x.loopCpu)).toFixed(1)}), load generator ${mean(rs.map((x) => x.clientCpu)).toFixed(1)} µs`,
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
    for (const workers of parts.has('throughput') ? workerCounts : []) {
      const sink = await startSink();
      const eyrie = await startDelivering(sink.url, workers);
      try {
        const url = `http://127.0.0.1:${eyrie.port}/`;
        await postNdjson(url, lines.slice(0, 1000), 500, agent);
        await waitFor(() => sink.count() >= 1000, 60_000);
        const started = performance.now();
        const cpu = cpuSeconds(eyrie);
        await postNdjson(url, lines, 500, agent);
        await waitFor(() => sink.count() >= 1000 + lines.length, 300_000);
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `delivered ${lines.length} events with ${workers} worker(s) in ${seconds.toFixed(2)} s: ${(lines.length / seconds).toFixed(0)} events/s (eyrie CPU ${(((cpuSeconds(eyrie) - cpu) * 1e6) / lines.length).toFixed(0)} µs/event)`,
        );
      } finally {
        await eyrie.stop();
        await sink.close();
      }
    }

    if (parts.has('latency')) await latencyBench(agent);
    if (parts.has('memory')) await memoryBench(agent);
  } finally {
    await agent.close();
  }
}

/**
 * Ingest-to-delivery latency at a steady rate, one event per request as Falco sends them: `warmup`
 * seconds at the rate first (JIT, connection pools), drained, then `seconds` measured.
 */
async function latencyBench(agent: Agent): Promise<void> {
  const sink = await startSink();
  const eyrie = await startDelivering(sink.url, 4);
  try {
    const url = `http://127.0.0.1:${eyrie.port}/`;
    const steady = generateEvents(Math.max(1, rate * (warmup + seconds)), { seed: 23, extra: ['--uuid'] });
    const sentAt = new Map<string, number>();
    const run = async (from: number, count: number): Promise<void> => {
      const startedAt = performance.now();
      const inFlight = new Set<Promise<void>>();
      for (let i = 0; i < count; i++) {
        const due = startedAt + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const line = steady[from + i]!;
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
          if (res.statusCode !== 200) throw new Error(`ingest answered ${res.statusCode}`);
        })().finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await Promise.all(inFlight);
      await waitFor(() => sink.arrivals.size >= from + count, 120_000);
    };
    const warm = Math.round(rate * warmup);
    if (warm > 0) await run(0, warm);
    const warmed = new Set(sink.arrivals.keys());
    const cpu = cpuSeconds(eyrie);
    await run(warm, rate * seconds);
    const used = cpuSeconds(eyrie) - cpu;
    const latencies = [...sink.arrivals]
      .filter(([uuid]) => !warmed.has(uuid))
      .map(([uuid, at]) => at - sentAt.get(uuid)!)
      .sort((a, b) => a - b);
    console.log(
      `ingest-to-delivery latency at ${rate} events/s for ${seconds} s (after ${warmup} s warm-up): p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p90 ${percentile(latencies, 0.9).toFixed(1)} ms, p99 ${percentile(latencies, 0.99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms (${latencies.length} events; eyrie CPU ${used.toFixed(1)} s, ${((used * 1e6) / latencies.length).toFixed(0)} µs/event)`,
    );
  } finally {
    await eyrie.stop();
    await sink.close();
  }
}

/** Resident memory while ingesting 10,000 events/s (batches of 100 every 10 ms) for 10 s. */
async function memoryBench(agent: Agent): Promise<void> {
  const sink = await startSink();
  const eyrie = await startDelivering(sink.url, 4);
  try {
    const url = `http://127.0.0.1:${eyrie.port}/`;
    const idle = eyrie.rss();
    const batch = generateEvents(100, { seed: 29 });
    const startedAt = performance.now();
    let peak = idle;
    for (let tick = 0; tick < 1000; tick++) {
      const wait = startedAt + tick * 10 - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      void postNdjson(url, batch, 100, agent);
      if (tick % 50 === 0) peak = Math.max(peak, eyrie.rss());
    }
    await waitFor(() => sink.count() >= 100_000, 120_000);
    peak = Math.max(peak, eyrie.rss());
    console.log(
      `resident memory at 10,000 events/s for 10 s: idle ${(idle / 1048576).toFixed(0)} MB, peak ${(peak / 1048576).toFixed(0)} MB; ${sink.count()} delivered`,
    );
  } finally {
    await eyrie.stop();
    await sink.close();
  }
}

const bodies = generateEvents(1000, { seed: 3 });
if (only === undefined || only === 'ingest') await ingestBench(bodies);
if (only === undefined || only === 'delivery') await deliveryBench();
if (only === undefined || only === 'memory-queue') memoryQueueBench();
