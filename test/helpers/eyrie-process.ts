import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

/** The CLI from the sources (never a stale dist/ build): `node --import tsx src/cli/main.ts`. */
export const eyrieCli = ['--import', 'tsx', fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))];

export interface EyrieProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote to stderr (pino logs). */
  output(): string;
  /** Resident memory (bytes) from /proc. */
  rss(): number;
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>;
}

/**
 * Runs `eyrie serve -c FILE` (or `args`) as a child process and waits until it listens: until its log
 * shows `listening` (default: the ingest address), whose first group becomes `url`.
 */
export function spawnEyrie(
  configFile: string,
  env: NodeJS.ProcessEnv = {},
  options: { args?: string[]; listening?: RegExp } = {},
): Promise<EyrieProcess> {
  const args = options.args ?? ['serve', '-c', configFile];
  const listening = options.listening ?? /"ingest":"(https?:\/\/[^"]+)"/;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...eyrieCli, ...args], {
      // The 'eyrie is listening' line is logged at info: keep it visible whatever the config says.
      env: { ...process.env, EYRIE_LOG__LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const timer = setTimeout(() => reject(new Error(`eyrie did not start: ${out}`)), 30_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = listening.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          url: m[1]!,
          output: () => out,
          rss: () =>
            Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024,
          exited,
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`eyrie exited with ${code}: ${out}`));
    });
  });
}

/**
 * Runs `node ARGS` as uid 65534 when the tests run as root (who may read and write anything), else as
 * this user. Undefined, the test skipped, when that user cannot load this checkout (one under /root).
 */
export async function runUnprivileged(
  t: TestContext,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string } | undefined> {
  const root = process.getuid?.() === 0;
  const res = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      args,
      { encoding: 'utf8', timeout: 30_000, ...(root ? { uid: 65534, gid: 65534 } : {}) },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
  // The module loader's failure, not the program's answer (Eyrie's own errors start with "eyrie:").
  if (root && res.stdout === '' && res.code !== 0 && !res.stderr.startsWith('eyrie:')) {
    const cause = /.*(EACCES|Cannot find).*/.exec(res.stderr)?.[0];
    if (cause !== undefined) {
      t.skip(`uid 65534 cannot load this checkout: ${cause}`);
      return undefined;
    }
  }
  return res;
}
