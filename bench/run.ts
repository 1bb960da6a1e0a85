/**
 * `npm run bench`: ingest throughput of Eyrie against a bare node:http + JSON.parse server measured in
 * the same run, with their ratio. Single-event POSTs (as Falco's http_output sends them), keep-alive,
 * many connections, realistic events from the shared generator. Rounds alternate between the two
 * servers so machine noise hits both alike.
 *
 *   npm run bench [-- --connections 50 --duration 8 --rounds 3]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { generateEvents } from '../test/helpers/events.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const connections = opt('connections', 50);
const duration = opt('duration', 8);
const rounds = opt('rounds', 3);
const root = fileURLToPath(new URL('..', import.meta.url));

function start(
  command: string,
  argv: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening (\d+)/.exec(out) ?? /"ingest":"https?:\/\/[^"]*:(\d+)"/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${command} exited with ${code}: ${out}`)));
  });
}

async function load(
  port: number,
  bodies: string[],
): Promise<{ rps: number; p99: number; errors: number; non2xx: number }> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/`,
    connections,
    duration,
    pipelining: 1,
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

const bodies = generateEvents(1000, { seed: 3 });
const dir = mkdtempSync(join(tmpdir(), 'eyrie-bench-'));
const config = join(dir, 'eyrie.yaml');
writeFileSync(
  config,
  `listen:\n  address: 127.0.0.1\n  port: 0\nlog:\n  level: info\nstorage:\n  path: ${dir}/data\n`,
);

console.log(
  `ingest benchmark: ${connections} connections, ${duration}s per round, ${rounds} rounds, ${bodies.length} distinct events`,
);
const baseline = await start(process.execPath, ['bench/baseline-server.mjs', '0']);
const eyrie = await start(process.execPath, ['bin/eyrie.js', 'serve', '-c', config]);

const results = {
  baseline: [] as Awaited<ReturnType<typeof load>>[],
  eyrie: [] as Awaited<ReturnType<typeof load>>[],
};
try {
  await load(baseline.port, bodies.slice(0, 100)); // warm-up
  await load(eyrie.port, bodies.slice(0, 100));
  for (let r = 1; r <= rounds; r++) {
    const b = await load(baseline.port, bodies);
    const e = await load(eyrie.port, bodies);
    results.baseline.push(b);
    results.eyrie.push(e);
    console.log(
      `round ${r}: node:http ${b.rps.toFixed(0)} req/s p99 ${b.p99} ms | eyrie ${e.rps.toFixed(0)} req/s p99 ${e.p99} ms | ratio ${(e.rps / b.rps).toFixed(3)}` +
        (e.errors + e.non2xx > 0 ? ` (eyrie errors ${e.errors}, non-2xx ${e.non2xx})` : ''),
    );
  }
} finally {
  baseline.child.kill('SIGTERM');
  eyrie.child.kill('SIGTERM');
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const b = mean(results.baseline.map((x) => x.rps));
const e = mean(results.eyrie.map((x) => x.rps));
console.log(
  `\nsummary ingest: node:http ${b.toFixed(0)} req/s, eyrie ${e.toFixed(0)} req/s, ratio ${(e / b).toFixed(3)} (target >= 0.85); ` +
    `p99 node:http ${mean(results.baseline.map((x) => x.p99)).toFixed(1)} ms, eyrie ${mean(results.eyrie.map((x) => x.p99)).toFixed(1)} ms`,
);
