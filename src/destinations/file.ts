import { Type } from 'typebox';
import { closeSync, constants as fsConstants, fchmodSync, openSync, statSync } from 'node:fs';
import { lstat, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Destination, DestinationType } from './types.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import { RetryableError } from '../delivery/errors.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { makeDirectory, unusablePath } from '../util/directory.ts';
import { DestinationSettingError } from '../config/errors.ts';
import { durationSchema, sizeSchema } from '../config/schema.ts';
import { errorCode } from '../util/error.ts';
import { LogThrottle } from '../util/log-throttle.ts';

export interface FileOptions {
  /** File the events are appended to, one Falcosidekick JSON document per line (NDJSON). */
  path: string;
  /** Rotate before a batch would take the file past this many bytes; 0 = no size rotation. */
  max_size: number;
  /** Rotate once the file is this old (ms); 0 = no time rotation. */
  rotate_every: number;
  /** Rotated files kept (`path.1` … `path.N`); older ones are deleted. */
  max_files: number;
  /** Permission bits of files Eyrie creates. */
  mode: number;
  /** fsync after each batch, so a successful send (which removes the events from the queue) is on disk. */
  fsync: boolean;
}

const MiB = 1024 * 1024;

/**
 * Appends events as NDJSON (Falcosidekick's JSON bytes, one event per line) to a local file, with
 * size- and time-based rotation (`path` → `path.1` → … → `path.<max_files>`), surviving restarts and
 * external rotation (logrotate moving the file away).
 */
export const fileDestination: DestinationType<FileOptions> = {
  type: 'file',
  optionsSchema: Type.Object(
    {
      path: Type.String({ minLength: 1, expect: 'a file path' }),
      max_size: sizeSchema(100 * MiB),
      rotate_every: durationSchema(0),
      max_files: Type.Integer({ minimum: 0, default: 5 }),
      mode: Type.Integer({
        minimum: 0,
        maximum: 0o777,
        default: 0o640,
        expect: 'permission bits 0-0o777 (write 0o640 in YAML: a plain 0640 is the decimal number 640)',
        octal: true,
      }),
      fsync: Type.Boolean({ default: true }),
    },
    { additionalProperties: false },
  ),
  secretOptions: [],
  batch: { max_events: 1000, max_bytes: 4 * MiB, timeout: 200 },
  check(options, context) {
    const problem = unusablePath(resolve(options.path), 'file');
    if (problem !== undefined) throw new DestinationSettingError(context.name, 'path', problem);
  },
  create(options, context): Destination {
    const path = resolve(options.path);
    checkWritable(path, options.mode, context.name, context.logger);
    return new FileDestination(context.name, path, options, context.logger);
  },
};

/**
 * What a full disk or a process out of descriptors answers: the path is right and the condition
 * passes, so it must not stop Eyrie from starting (ingest and every other destination with it);
 * sends retry it, as they do once running.
 */
const RESOURCE_SHORTAGES = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE']);

/**
 * Startup checks: creates the directory and the file, so a bad path fails `create()`, not every send.
 * A shortage of space or descriptors is only warned about.
 */
function checkWritable(path: string, mode: number, name: string, logger: Logger): void {
  // Typed in full: TypeScript narrows on a call that returns never only then.
  const refuse: (detail: string, cause?: unknown) => never = (detail, cause) => {
    throw new DestinationSettingError(name, 'path', detail, cause === undefined ? undefined : { cause });
  };
  try {
    checkPath(path, mode, refuse);
  } catch (err) {
    const code = errorCode((err as Error).cause);
    if (code === undefined || !RESOURCE_SHORTAGES.has(code)) throw err;
    logger.warn(
      { path, error: message((err as Error).cause) },
      'cannot create the file yet: starting anyway, sends retry until there is room',
    );
  }
}

function checkPath(path: string, mode: number, refuse: (detail: string, cause?: unknown) => never): void {
  const dir = dirname(path);
  try {
    makeDirectory(dir);
  } catch (err) {
    refuse(`cannot create directory ${dir}: ${message(err)}`, err);
  }
  let existing;
  try {
    existing = statSync(path, { throwIfNoEntry: false });
  } catch (err) {
    refuse(`cannot access ${path}: ${message(err)}`, err);
  }
  if (existing?.isDirectory()) refuse(`${path} is a directory, not a file`);
  if (existing && !existing.isFile()) refuse(`${path} is not a regular file`);
  let fd: number;
  let created = false;
  try {
    try {
      fd = openSync(path, CREATE_FLAGS, mode);
      created = true;
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
      fd = openSync(path, APPEND_FLAGS);
    }
  } catch (err) {
    refuse(`cannot open ${path} for writing: ${message(err)}`, err);
  }
  try {
    // The umask may have narrowed the mode: files Eyrie creates get exactly `mode`.
    if (created) fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

const APPEND_FLAGS = fsConstants.O_WRONLY | fsConstants.O_APPEND;
const CREATE_FLAGS = APPEND_FLAGS | fsConstants.O_CREAT | fsConstants.O_EXCL;

interface OpenFile {
  handle: FileHandle;
  dev: bigint;
  ino: bigint;
  /** When the file was created (or, if the file system cannot tell, opened), for `rotate_every`. */
  since: number;
}

class FileDestination implements Destination {
  readonly type = 'file';
  readonly name: string;
  private readonly path: string;
  private readonly options: FileOptions;
  private readonly logger: Logger;
  private file: OpenFile | undefined;
  /** Sends run one at a time (the queue may run several concurrently). */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly rotateFailures = new LogThrottle(60_000);
  private warnedNoBirthTime = false;

  constructor(name: string, path: string, options: FileOptions, logger: Logger) {
    this.name = name;
    this.path = path;
    this.options = options;
    this.logger = logger;
  }

  async send(events: readonly FalcoEvent[]): Promise<void> {
    if (this.closed) throw new RetryableError(`file destination "${this.name}" is closed`);
    if (events.length === 0) return;
    // One buffer, one write: whole lines only, whatever the batch size.
    const data = Buffer.from(events.map((e) => toSidekickJson(e) + '\n').join(''), 'utf8');
    await this.serialize(async () => {
      try {
        await this.write(data);
      } catch (err) {
        throw new RetryableError(`cannot write to ${this.path}: ${message(err)}`, { cause: err });
      }
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return this.serialize(async () => {
      const file = this.file;
      this.file = undefined;
      if (!file) return;
      try {
        await file.handle.datasync();
      } finally {
        await file.handle.close();
      }
    });
  }

  private serialize(task: () => Promise<void>): Promise<void> {
    const run = this.tail.then(task, task);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async write(data: Buffer): Promise<void> {
    let { file, size } = await this.current();
    const now = Date.now();
    const { max_size: maxSize, rotate_every: rotateEvery } = this.options;
    const tooBig = maxSize > 0 && size > 0 && size + data.length > maxSize;
    // Created "later than now": the wall clock was stepped back since. The period counts from now.
    if (file.since > now) file.since = now;
    const tooOld = rotateEvery > 0 && now - file.since >= rotateEvery;
    if (tooOld && size === 0) file.since = now; // nothing to rotate: start the period afresh
    if (tooBig || (tooOld && size > 0)) {
      try {
        await this.rotate(
          tooBig ? `size ${size + data.length} > max_size ${maxSize}` : 'rotate_every elapsed',
        );
      } catch (err) {
        // Events kept flowing into an oversized file beat a destination stalled until someone looks.
        const heldBack = this.rotateFailures.take();
        if (heldBack !== undefined)
          this.logger.error(
            { path: this.path, err, heldBack },
            'file: cannot rotate; appending to the current file until rotation works again',
          );
      }
      ({ file, size } = await this.current());
    }
    let written = 0;
    try {
      while (written < data.length) {
        const { bytesWritten } = await file.handle.write(data, written, data.length - written);
        written += bytesWritten;
      }
      if (this.options.fsync) await file.handle.datasync();
    } catch (err) {
      // Leave no half batch (and no half line) behind: the whole batch is retried.
      if (written > 0) {
        await file.handle.truncate(size).catch((truncateErr: unknown) => {
          this.logger.warn(
            { path: this.path, err: truncateErr },
            'file: cannot remove a partly written batch',
          );
        });
      }
      throw err;
    }
  }

  /**
   * The open file for `path` and its size, reopening when the file was moved away or replaced
   * (logrotate) since the last batch. The size is read from disk, so truncation by others counts too.
   */
  private async current(): Promise<{ file: OpenFile; size: number }> {
    if (this.file) {
      const st = await ignoreMissing(stat(this.path, { bigint: true }));
      if (st && st.ino === this.file.ino && st.dev === this.file.dev)
        return { file: this.file, size: Number(st.size) };
      this.logger.info({ path: this.path }, 'file: moved or replaced by someone else, reopening');
      await this.closeFile();
    }
    const file = await this.openFile();
    const st = await file.handle.stat({ bigint: true });
    return { file, size: Number(st.size) };
  }

  private async openFile(replacedMeanwhile = 0): Promise<OpenFile> {
    let handle: FileHandle;
    let created = false;
    try {
      handle = await open(this.path, CREATE_FLAGS, this.options.mode).catch((err: unknown) => {
        // The directory was removed while Eyrie ran: made again, as at startup.
        if (errorCode(err) !== 'ENOENT') throw err;
        makeDirectory(dirname(this.path));
        return open(this.path, CREATE_FLAGS, this.options.mode);
      });
      created = true;
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
      handle = await open(this.path, APPEND_FLAGS);
    }
    try {
      if (created) {
        await handle.chmod(this.options.mode);
        if (this.options.fsync) await syncDirectory(dirname(this.path));
      }
      const st = await handle.stat({ bigint: true });
      if (!st.isFile()) throw new Error(`${this.path} is not a regular file`);
      if (st.size > 0n && !(await this.setPartialLineAside(handle, st)) && replacedMeanwhile < 3) {
        // Moved away (logrotate) between the two opens: the file at `path` now is the one to use.
        await handle.close();
        return await this.openFile(replacedMeanwhile + 1);
      }
      const now = Date.now();
      const born = Number(st.birthtimeMs);
      const since = born > 0 && born <= now ? born : now;
      if (this.options.rotate_every > 0 && !(born > 0) && !this.warnedNoBirthTime) {
        this.warnedNoBirthTime = true;
        this.logger.warn(
          { path: this.path },
          "file: this file system does not record when a file was created: rotate_every counts from now, not from the file's creation",
        );
      }
      this.file = { handle, dev: st.dev, ino: st.ino, since };
      return this.file;
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * A crash mid-write may have left a partial last line: it is moved to `path.partial-<ms>` and cut
   * off, not ended with a newline, which would leave a line no NDJSON reader can parse (its batch was
   * not acknowledged and is sent again). False, with nothing cut, when `path` is no longer the file
   * opened (logrotate moved it meanwhile): that file is someone else's now.
   */
  private async setPartialLineAside(handle: FileHandle, st: BigIntStats): Promise<boolean> {
    const size = Number(st.size);
    const reader = await open(this.path, 'r');
    try {
      const read = await reader.stat({ bigint: true });
      if (read.dev !== st.dev || read.ino !== st.ino) return false;
      const complete = await completeLinesLength(reader, size);
      if (complete === size) return true;
      const aside = `${this.path}.partial-${Date.now()}`;
      await copyRange(reader, complete, size, aside, this.options.mode);
      await handle.truncate(complete);
      this.logger.warn(
        { path: this.path, bytes: size - complete, aside },
        'file: a partial last line left by an interrupted write was moved aside',
      );
      return true;
    } finally {
      await reader.close();
    }
  }

  private async closeFile(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.handle.close().catch((err: unknown) => {
      this.logger.warn({ path: this.path, err }, 'file: close failed');
    });
  }

  /** `path.<max_files-1>` → `path.<max_files>`, …, `path` → `path.1`; deletes rotated files beyond max_files. */
  private async rotate(reason: string): Promise<void> {
    const { max_files: maxFiles } = this.options;
    // Checked before anything moves: a directory at path.N would fail a rename half way along the
    // chain, or be moved along it.
    for (let i = 1; i <= maxFiles; i++) {
      const entry = await ignoreMissing(lstat(`${this.path}.${i}`));
      if (entry && !entry.isFile()) throw new Error(`${this.path}.${i} is not a regular file`);
    }
    this.logger.info({ path: this.path, reason }, 'file: rotating');
    await this.closeFile();
    await this.prune(maxFiles);
    if (maxFiles === 0) {
      await ignoreMissing(unlink(this.path));
    } else {
      for (let i = maxFiles - 1; i >= 1; i--) {
        await ignoreMissing(rename(`${this.path}.${i}`, `${this.path}.${i + 1}`));
      }
      await ignoreMissing(rename(this.path, `${this.path}.1`));
    }
    if (this.options.fsync) await syncDirectory(dirname(this.path));
  }

  /**
   * Deletes `path.<keep+1>`, `path.<keep+2>`… up to the first gap: files left from a larger max_files.
   * Not every `path.<digits>`: logrotate's dateext (`path.20261129`) and other tools' files stay.
   */
  private async prune(keep: number): Promise<void> {
    for (let n = keep + 1; ; n++) {
      const entry = `${this.path}.${n}`;
      if (!(await ignoreMissing(lstat(entry)))?.isFile()) return;
      await ignoreMissing(unlink(entry));
    }
  }
}

/** Makes a created or renamed directory entry durable; not every platform can fsync a directory. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // EINVAL/EISDIR on platforms without directory fsync: nothing more can be done.
  } finally {
    await handle.close();
  }
}

const READ_CHUNK = 64 * 1024;

/** The length of the file's first `size` bytes up to and including their last newline (0 if none). */
async function completeLinesLength(handle: FileHandle, size: number): Promise<number> {
  const chunk = Buffer.alloc(READ_CHUNK);
  for (let end = size; end > 0;) {
    const start = Math.max(0, end - chunk.length);
    const { bytesRead } = await handle.read(chunk, 0, end - start, start);
    const newline = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (newline !== -1) return start + newline + 1;
    end = start;
  }
  return 0;
}

/** Copies bytes `from`…`to` of `source` into a new file `target`, synced. */
async function copyRange(
  source: FileHandle,
  from: number,
  to: number,
  target: string,
  mode: number,
): Promise<void> {
  const out = await open(target, 'wx', mode);
  try {
    const chunk = Buffer.alloc(READ_CHUNK);
    for (let at = from; at < to;) {
      const { bytesRead } = await source.read(chunk, 0, Math.min(chunk.length, to - at), at);
      if (bytesRead === 0) break;
      await out.write(chunk, 0, bytesRead);
      at += bytesRead;
    }
    await out.sync();
  } finally {
    await out.close();
  }
}

/** The operation's result, or undefined when the path it names does not exist. */
async function ignoreMissing<T>(operation: Promise<T>): Promise<T | undefined> {
  try {
    return await operation;
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
    return undefined;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
