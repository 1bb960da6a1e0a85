import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { EyrieConfig } from '../../src/config/types.ts';

/** A fresh temporary directory. */
export function tempDir(prefix = 'eyrie-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
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
