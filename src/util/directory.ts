import { accessSync, constants as fsConstants, mkdirSync, statSync } from 'node:fs';
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

/**
 * Why `path` could not be written as a `kind` (created with its missing directories, or opened if it
 * exists), found without creating anything, for `eyrie check`; undefined when nothing stands in the way.
 * Root passes write-permission checks, so a read-only mount such as /proc shows only when created.
 */
export function unusablePath(path: string, kind: 'file' | 'directory'): string | undefined {
  if (path === '') return 'is empty';
  const writable = (target: string): string | undefined => {
    try {
      accessSync(target, fsConstants.W_OK);
      return undefined;
    } catch (err) {
      return `${target} is not writable: ${(err as Error).message}`;
    }
  };
  // Under a file, Node 20 throws ENOTDIR where Node 24 answers "no entry": the walk up finds the file.
  const stat = (target: string) => {
    try {
      return statSync(target, { throwIfNoEntry: false });
    } catch (err) {
      if (errorCode(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  };
  try {
    const existing = stat(path);
    if (existing) {
      if (kind === 'directory' && !existing.isDirectory()) return `${path} exists and is not a directory`;
      if (kind === 'file' && existing.isDirectory()) return `${path} is a directory, not a file`;
      if (kind === 'file' && !existing.isFile()) return `${path} is not a regular file`;
      return writable(path);
    }
    // The nearest ancestor that exists must be a directory this process may create entries in.
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      const ancestor = stat(dir);
      if (ancestor) return ancestor.isDirectory() ? writable(dir) : `${dir} exists and is not a directory`;
      if (dirname(dir) === dir) return undefined;
    }
  } catch (err) {
    return `cannot access ${path}: ${(err as Error).message}`;
  }
}
