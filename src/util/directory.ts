import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorCode } from './error.ts';

/**
 * `mkdir -p`, one level at a time: Node 20's `mkdirSync(…, { recursive: true })` (and its promise
 * form) loops forever on some paths, e.g. under /proc, where mkdir answers ENOENT although the parent
 * exists. This fails with that ENOENT instead.
 */
export function makeDirectory(dir: string): void {
  const existing = statSync(dir, { throwIfNoEntry: false });
  if (existing?.isDirectory()) return;
  if (existing)
    throw Object.assign(new Error(`ENOTDIR: ${dir} exists and is not a directory`), { code: 'ENOTDIR' });
  const parent = dirname(dir);
  if (parent !== dir) makeDirectory(parent);
  try {
    mkdirSync(dir);
  } catch (err) {
    if (errorCode(err) !== 'EEXIST' || !statSync(dir).isDirectory()) throw err;
  }
}
