import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { sleep } from './delivery.ts';

/**
 * A real Prometheus server (the `prometheus` binary, Debian package `prometheus`) for tests of the
 * shipped dashboards and rules, and PromQL helpers for them.
 *
 *   const prom = await startPrometheus({ scrape_configs: [...] }, dir);
 *   const { data } = await prom.query('up');
 *   await prom.close();
 */

/** Whether `prometheus` and `promtool` are on PATH. */
export function prometheusInstalled(): boolean {
  return ['prometheus', 'promtool'].every(
    (bin) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).error === undefined,
  );
}

/** Runs `promtool ARGS…`; returns its exit status and everything it printed. */
export function promtool(args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8' });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export interface Sample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

/** `/api/v1/query`'s answer. */
export interface QueryResponse {
  status: 'success' | 'error';
  data?: { resultType: string; result: Sample[] | [number, string] };
  errorType?: string;
  error?: string;
}

export interface PrometheusServer {
  url: string;
  /** Evaluates an instant query now (POST, so long expressions fit). */
  query(expr: string): Promise<QueryResponse>;
  /** GET an API path (e.g. `/api/v1/rules`), returning the parsed JSON. */
  get<T>(path: string): Promise<T>;
  /** What the server logged. */
  output(): string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s). */
  close(): Promise<void>;
}

/** Sends SIGTERM, and SIGKILL if the process is still there after `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts `prometheus` with `config` (the prometheus.yml content as an object) on a free loopback
 * port, its TSDB and config in `dir`, and waits until /-/ready answers.
 */
export async function startPrometheus(config: object, dir: string): Promise<PrometheusServer> {
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  const storage = join(dir, 'tsdb');
  mkdirSync(storage, { recursive: true });
  // Another process can take the free port before Prometheus binds it: try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      'prometheus',
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${storage}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    let ready = false;
    while (!ready && child.exitCode === null && Date.now() < deadline) {
      ready = await fetch(`${url}/-/ready`).then(
        (res) => res.ok,
        () => false,
      );
      if (!ready) await sleep(100);
    }
    if (!ready) {
      await stopProcess(child);
      if (attempt < 3 && /address already in use/.test(out)) continue;
      throw new Error(`prometheus did not become ready on ${url}: ${out}`);
    }
    const get = async <T>(path: string): Promise<T> => (await fetch(`${url}${path}`)).json() as Promise<T>;
    return {
      url,
      async query(expr) {
        const res = await fetch(`${url}/api/v1/query`, {
          method: 'POST',
          body: new URLSearchParams({ query: expr }),
        });
        return (await res.json()) as QueryResponse;
      },
      get,
      output: () => out,
      close: () => stopProcess(child),
    };
  }
}

const COMPARISON = /^(==|!=|>=|<=|>|<)/;

/** Offsets of `expr` outside parentheses, brackets, braces and quotes (PromQL's top level). */
function* topLevel(expr: string): Generator<number> {
  let depth = 0;
  let quote: string | undefined;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (depth === 0) yield i;
  }
}

/** The operands of a top-level `or` (`A > 0 or B`), each checked on its own; [expr] without one. */
export function splitOr(expr: string): string[] {
  const parts: string[] = [];
  let from = 0;
  for (const i of topLevel(expr)) {
    if (i >= from && /^\sor\s/.test(expr.slice(i, i + 4))) {
      parts.push(expr.slice(from, i).trim());
      from = i + 3;
    }
  }
  parts.push(expr.slice(from).trim());
  return parts;
}

/**
 * Splits a PromQL expression at its top-level comparison with a number (`X > 300`, `X == 0`,
 * `X > bool 1`): alert expressions are empty while they do not fire, their left-hand side is the
 * data. Returns undefined when there is no top-level comparison; throws when the comparison is not
 * with a plain number (then stripping it would change what is measured).
 */
export function splitThreshold(
  expr: string,
): { value: string; operator: string; threshold: number } | undefined {
  for (const i of topLevel(expr)) {
    const operator = COMPARISON.exec(expr.slice(i))?.[1];
    if (operator === undefined) continue;
    const right = expr
      .slice(i + operator.length)
      .trim()
      .replace(/^bool\s+/, '');
    if (!/^[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$/i.test(right)) {
      throw new Error(`top-level comparison is not with a number: ${expr}`);
    }
    return { value: expr.slice(0, i).trim(), operator, threshold: Number(right) };
  }
  return undefined;
}
