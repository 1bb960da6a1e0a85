import { accessSync, closeSync, constants as fsConstants, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorCode } from './error.ts';

/**
 * `mkdir -p`, one level at a time: Node 20's `mkdirSync(…, { recursive: true })` (and its promise
 * form) loops forever on some paths, e.g. under /proc, where mkdir answers ENOENT although the parent
 * exists. This fails with that ENOENT instead.
 */
export function makeDirectory(dir: string, mode?: number): void {
  const existing = statSync(dir, { throwIfNoEntry: false });
  if (existing?.isDirectory()) return;
  if (existing)
    throw Object.assign(new Error(`ENOTDIR: ${dir} exists and is not a directory`), { code: 'ENOTDIR' });
  const parent = dirname(dir);
  if (parent !== dir) makeDirectory(parent);
  try {
    // `mode` (narrowed by the umask) for `dir` only: its parents may be shared with others.
    mkdirSync(dir, mode);
  } catch (err) {
    if (errorCode(err) !== 'EEXIST' || !statSync(dir).isDirectory()) throw err;
  }
}

/**
 * Checks before SQLite opens one of Eyrie's files that this process may write it, creating it with
 * mode 0600 (never wider, whatever the umask) when it does not exist. SQLite opens a file it may not
 * write read-only without a word, so a lock on it is not held and the journal's writes fail later;
 * and SQLite's own mode, 0644 under the usual umask, would leave every journaled alert readable by
 * every user of the host. Throws the system error when it is a matter of permission (EACCES, EPERM,
 * EROFS), with the file's owner and mode; anything else (a directory there) is left to SQLite.
 */
export function openPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
  } catch (err) {
    const code = errorCode(err);
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return;
    const st = statSync(path, { throwIfNoEntry: false });
    if (st === undefined) throw err;
    const uid = process.getuid?.();
    const detail = `the file is owned by uid ${st.uid} with mode 0${(st.mode & 0o777).toString(8)}${uid === undefined ? '' : `, this process runs as uid ${uid}`}`;
    throw Object.assign(new Error(`${(err as Error).message} (${detail})`), { code });
  }
  closeSync(fd);
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
