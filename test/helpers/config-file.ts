import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { EyrieConfig } from '../../src/config/types.ts';

const leftAtExit = new Set<string>();

/** Removes `dir` when the test process exits (each test file runs in its own process). */
export function removeAtExit(dir: string): string {
  if (leftAtExit.size === 0)
    process.once('exit', () => {
      for (const d of leftAtExit) rmSync(d, { recursive: true, force: true });
    });
  leftAtExit.add(dir);
  return dir;
}

/** A fresh temporary directory, removed at the latest when the test process exits. */
export function tempDir(prefix = 'eyrie-test-'): string {
  return removeAtExit(mkdtempSync(join(tmpdir(), prefix)));
}

/** A fresh temporary directory removed after the test `t`. */
export function testTempDir(t: { after: (fn: () => void) => void }, prefix?: string): string {
  const dir = tempDir(prefix);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a native YAML config into a temp dir (with `storage.path` there) and returns its path. */
export function writeConfig(yaml: string, dir = tempDir()): { file: string; dir: string } {
  const file = join(dir, 'eyrie.yaml');
  const withStorage = /^storage:/m.test(yaml) ? yaml : `${yaml}\nstorage:\n  path: ${join(dir, 'data')}\n`;
  writeFileSync(file, withStorage);
  return { file, dir };
}

/** Loads a native YAML config text as the server would. */
export function configFromYaml(yaml: string): EyrieConfig {
  const { file } = writeConfig(yaml);
  return loadConfig({ file, env: {} }).config;
}
