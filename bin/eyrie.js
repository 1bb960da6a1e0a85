#!/usr/bin/env node
// Runs the compiled CLI; falls back to the TypeScript sources (via tsx) in a checkout that was not built.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

// SIGTERM, SIGINT or SIGHUP before the CLI has installed its handlers: noted, and acted on by the CLI once it
// has (src/cli/early-signals.ts), instead of killing a service that is still loading.
const noted = { signals: [], note: (signal) => noted.signals.push(signal) };
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, noted.note);
globalThis[Symbol.for('eyrie.earlySignals')] = noted;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'cli', 'main.js');
try {
  if (existsSync(built)) {
    await import(pathToFileURL(built).href);
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(join(root, 'src', 'cli', 'main.ts')).href);
  }
} catch (err) {
  // Node's module loader opens many files at once (about 140 here): under a low `ulimit -n` it
  // fails before the CLI can say anything, with a loader stack trace.
  if (err?.code !== 'EMFILE') throw err;
  process.stderr.write(
    `eyrie: too many open files (${err.message}): raise the open-file limit (ulimit -n) to at least 1024\n`,
  );
  process.exit(1);
}
