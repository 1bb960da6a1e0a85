import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { EyrieConfig } from '../../src/config/types.ts';

/** A fresh temporary directory. */
export function tempDir(prefix = 'eyrie-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
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
