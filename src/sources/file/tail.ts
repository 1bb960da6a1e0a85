import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open, readdir, readFile, rename, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { timerDelay } from '../../util/timer.ts';
import type { Logger } from 'pino';
import type { FileSourceConfig } from '../../config/types.ts';
import { BATCH_LINES, LineBatcher, LineSplitter, type SourceLine } from '../line-batcher.ts';
import type { EventSource, SourceContext } from '../source.ts';
import { makeDirectory } from '../../util/directory.ts';
import { errorCode } from '../../util/error.ts';

/** Bytes read per call: a few hundred alerts. */
const READ_CHUNK_BYTES = 256 * 1024;
/** How much of the file's beginning identifies it (with its inode) across restarts. */
const FINGERPRINT_BYTES = 256;
/** The offset is written at most this often while reading (and always on open, rotation, close). */
const SAVE_INTERVAL_MS = 1000;
/**
 * After a new file appears at the path, the old one is read until it has not grown for this long
 * (at least two polls): a writer that holds it open (Falco's file_output with keep_alive: true)
 * appends to it until it reopens the path (SIGUSR1 in logrotate's postrotate).
 */
const ROTATE_QUIET_MS = 2000;
/** A long catch-up logs its progress this often. */
const PROGRESS_LOG_INTERVAL_MS = 5000;

/** The first `length` bytes of a file, hashed. */
interface Fingerprint {
  length: number;
  sha256: string;
}

/** What is kept in `<dataDir>/sources/file-<sha256 of path>.json`. */
interface SavedOffset {
  path: string;
  /** Device and inode as decimal strings (64-bit). */
  dev: string;
  ino: string;
  /** End of the last line the pipeline took. */
  offset: number;
  fingerprint: Fingerprint;
  saved_at: string;
}

/** The file being read (or last read): who it is and how far it has been taken. */
interface TrackedFile {
  dev: string;
  ino: string;
  fingerprint: Fingerprint;
}

function isMissing(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function statPath(path: string): Promise<BigIntStats | undefined> {
  try {
    return await stat(path, { bigint: true });
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

async function fingerprintOf(handle: FileHandle, length: number): Promise<Fingerprint | undefined> {
  const head = Buffer.alloc(length);
  const { bytesRead } = length === 0 ? { bytesRead: 0 } : await handle.read(head, 0, length, 0);
  if (bytesRead < length) return undefined; // shorter than what was seen before: not the same file
  return { length, sha256: createHash('sha256').update(head).digest('hex') };
}

async function sameBeginning(handle: FileHandle, expected: Fingerprint): Promise<boolean> {
  if (expected.length === 0) return true;
  const actual = await fingerprintOf(handle, expected.length);
  return actual?.sha256 === expected.sha256;
}

/**
 * Tails a file Falco's file_output appends to (one JSON alert per line, json_output: true), across
 * logrotate's rename-and-create and copytruncate, resuming after a restart from a saved offset.
 * Polls with stat/read on an open handle: fs.watch misses events across rotation and in containers.
 * The offset advances only past lines the pipeline has taken, so a refusing journal loses nothing.
 */
export class FileSource implements EventSource {
  readonly kind = 'file';
  readonly target: string;
  private readonly config: FileSourceConfig;
  private readonly logger: Logger;
  private readonly batcher: LineBatcher;
  private readonly stateFile: string;
  private readonly stopping = new AbortController();
  private readonly buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  private loop: Promise<void> | undefined;

  private handle: FileHandle | undefined;
  /** Identity of the open file, or of the last one read once it is closed (to recognize it again). */
  private tracked: TrackedFile | undefined;
  private readonly splitter = new LineSplitter();
  /** Where the next read starts: past the partial line the splitter holds. */
  private readPosition = 0;
  /** End of the last line the pipeline took: what is saved and resumed from. */
  private offset = 0;
  /** File size at the previous poll, to check the beginning only when the file changed. */
  private lastSize = -1n;
  private lastSaved = '';
  private lastSaveAt = 0;
  /** start_at: end applies only to a file that is there at the first look (and has no saved offset). */
  private startAtEndApplies = true;
  /** The last problem logged, so a lasting one is logged once. */
  private problem: string | undefined;
  /** While a new file waits at the path: which one, and since when the old one has not grown. */
  private pendingRotation: { ino: string; quietSince: number } | undefined;

  constructor(config: FileSourceConfig, context: SourceContext) {
    this.config = config;
    this.target = config.path;
    this.logger = context.logger.child({ path: config.path });
    this.batcher = new LineBatcher('file', context, this.logger);
    const key = createHash('sha256').update(resolve(config.path)).digest('hex').slice(0, 32);
    this.stateFile = join(context.dataDir, 'sources', `file-${key}.json`);
  }

  start(): void {
    this.loop ??= this.run();
  }

  ready(): boolean {
    return this.handle !== undefined && !this.stopping.signal.aborted;
  }

  async close(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await this.persist(true);
    await this.closeHandle();
  }

  private async run(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      try {
        await this.poll();
        await this.persist(false);
      } catch (err) {
        this.report('error', (err as Error).message, { err }, 'reading the file failed: retrying');
        // Reopened at the next poll from the offset kept in memory.
        await this.persist(true);
        await this.closeHandle();
      }
      try {
        // timerDelay: a poll_interval past ~24.8 days would make Node fire after 1 ms, a busy loop.
        await sleep(timerDelay(this.config.poll_interval), undefined, { signal: this.stopping.signal });
      } catch {
        return; // closing
      }
    }
  }

  /** One look at the file: open it, follow truncation, read what is new, follow rotation. */
  private async poll(): Promise<void> {
    const atPath = await statPath(this.config.path);
    if (this.handle === undefined) {
      if (atPath === undefined) {
        // A file created later holds only new alerts: it is read from its start.
        this.startAtEndApplies = false;
        this.report('info', 'missing', {}, 'waiting for the file to appear');
        return;
      }
      await this.openFile();
      await this.drain();
      return; // the rotation check waits for a fresh stat: the path may have changed since this one
    }
    await this.followTruncation();
    // Read before switching: the writer may have appended to the old file up to the rename.
    const readFrom = this.readPosition;
    await this.drain();
    if (this.stopping.signal.aborted) return;
    if (atPath !== undefined && String(atPath.ino) !== this.tracked!.ino) {
      const now = Date.now();
      const ino = String(atPath.ino);
      // Another new file than the one waited for (it came and went) starts the wait again.
      if (this.pendingRotation?.ino !== ino || this.readPosition !== readFrom)
        this.pendingRotation = { ino, quietSince: now };
      const quiet = Math.max(ROTATE_QUIET_MS, 2 * this.config.poll_interval);
      if (now - this.pendingRotation.quietSince < quiet) return; // the writer may still be appending to it
      const next = await open(this.config.path, 'r').catch((err: unknown) => {
        if (isMissing(err)) return undefined; // gone again since the stat: the next poll looks again
        throw err;
      });
      if (next === undefined) return;
      // Confirmed on the opened file: a filesystem whose stat and fstat disagree must not loop re-reading.
      if (String((await next.stat({ bigint: true })).ino) === this.tracked!.ino) {
        await next.close();
        return;
      }
      this.logger.info({ offset: this.offset }, 'file rotated: finished the old file, reading the new one');
      await this.finishFile();
      if (this.stopping.signal.aborted) {
        await next.close();
        return;
      }
      await this.openFile(next);
      await this.drain();
      return;
    }
    this.pendingRotation = undefined;
    if (atPath === undefined && (await this.handle.stat({ bigint: true })).nlink === 0n) {
      // Deleted, not renamed: holding it open would keep its disk space.
      this.logger.info({ offset: this.offset }, 'file deleted: waiting for a new one');
      await this.finishFile();
    }
  }

  /** Opens the path (or takes `handle`, opened on it) and decides where reading starts. */
  private async openFile(handle?: FileHandle): Promise<void> {
    handle ??= await open(this.config.path, 'r');
    let start: number;
    let reason: string;
    try {
      const stats = await handle.stat({ bigint: true });
      let size = Number(stats.size);
      let dev = String(stats.dev);
      let ino = String(stats.ino);
      const previous = this.tracked ? { ...this.tracked, offset: this.offset } : await this.loadSaved();
      let skipPartialLine = false;
      // Rotated while Eyrie was stopped: the rest of the old file first, then (the next polls) the new one.
      const rotated =
        previous !== undefined && previous.ino !== ino && this.tracked === undefined
          ? await this.findRotated(previous)
          : undefined;
      if (previous !== undefined && previous.ino === ino) {
        const unchanged = size >= previous.offset && (await sameBeginning(handle, previous.fingerprint));
        start = unchanged ? previous.offset : 0;
        reason = unchanged ? 'resumed at the saved offset' : 'file truncated or replaced: from the start';
      } else if (rotated !== undefined && previous !== undefined) {
        await handle.close();
        handle = rotated.handle;
        start = previous.offset;
        reason = `rotated while stopped: the rest of ${rotated.path} first`;
        dev = previous.dev;
        ino = previous.ino;
        size = rotated.size;
      } else if (previous !== undefined) {
        start = 0;
        reason = 'new file (rotated): from the start';
      } else if (this.startAtEndApplies && this.config.start_at === 'end') {
        start = size;
        reason = 'start_at end';
        if (size > 0) {
          const last = Buffer.alloc(1);
          await handle.read(last, 0, 1, size - 1);
          // Mid-line: that line was written before "now", like the rest.
          skipPartialLine = last[0] !== 0x0a;
        }
      } else {
        start = 0;
        reason = 'from the start';
      }
      this.handle = handle;
      this.tracked = { dev, ino, fingerprint: { length: 0, sha256: '' } };
      this.splitter.reset(start);
      if (skipPartialLine) this.splitter.skipToNextLine();
      this.readPosition = start;
      this.offset = start;
      this.lastSize = BigInt(size);
      this.startAtEndApplies = false;
      await this.extendFingerprint(size);
      this.problem = undefined;
      this.logger.info({ offset: start, size, reason }, 'reading file');
    } catch (err) {
      if (this.handle !== handle) await handle.close();
      throw err;
    }
    await this.persist(true);
  }

  /**
   * A file beside the path whose name extends it (logrotate's `path.1`, `path-20261129`), that
   * `wanted` accepts and that begins as `fingerprint` says, opened; undefined when there is none.
   */
  private async findBeside(
    wanted: (stats: BigIntStats) => boolean,
    fingerprint: Fingerprint,
  ): Promise<{ handle: FileHandle; path: string; size: number } | undefined> {
    if (fingerprint.length === 0) return undefined; // nothing to recognize it by
    const dir = dirname(this.config.path);
    const name = basename(this.config.path);
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch {
      return undefined;
    }
    for (const entry of entries) {
      if (entry === name || !entry.startsWith(name)) continue;
      const path = join(dir, entry);
      const stats = await statPath(path).catch(() => undefined);
      if (stats?.isFile() !== true || !wanted(stats)) continue;
      // Gone or unreadable since the stat (compressed and removed, another owner): not this one.
      const handle = await open(path, 'r').catch(() => undefined);
      if (handle === undefined) continue;
      if (await sameBeginning(handle, fingerprint)) return { handle, path, size: Number(stats.size) };
      await handle.close();
    }
    return undefined;
  }

  /**
   * The file a saved offset refers to, renamed beside the path while Eyrie was stopped and still
   * holding unread lines: same device and inode, longer than the offset.
   */
  private findRotated(saved: TrackedFile & { offset: number }) {
    return this.findBeside(
      (stats) =>
        String(stats.ino) === saved.ino &&
        String(stats.dev) === saved.dev &&
        Number(stats.size) > saved.offset,
      saved.fingerprint,
    );
  }

  /**
   * Copytruncate: what the writer appended between the last read and the copy is in the copy
   * logrotate made (`path.1`, another inode with this file's beginning), not in the truncated file.
   * Read there from the offset, before this file is read again from its start.
   */
  private async readRestFromCopy(): Promise<void> {
    const tracked = this.tracked!;
    const copy = await this.findBeside(
      (stats) => String(stats.ino) !== tracked.ino && Number(stats.size) > this.offset,
      tracked.fingerprint,
    );
    if (copy === undefined) return;
    const truncated = this.handle;
    const { lastSize } = this;
    const from = this.offset;
    this.handle = copy.handle;
    this.splitter.reset(from);
    this.readPosition = from;
    try {
      await this.drain();
    } finally {
      this.handle = truncated;
      this.lastSize = lastSize;
      await copy.handle.close();
    }
    this.logger.info(
      { copy: copy.path, from, to: this.offset },
      'file truncated (copytruncate): read the lines written since the last read from its copy',
    );
  }

  /**
   * Copytruncate (same inode, shorter, or a different beginning): read again from the start. Between
   * polls a file whose size did not change is taken as unchanged; `always` checks anyway (in the
   * middle of a read, where the size says nothing). Returns whether the file was truncated.
   */
  private async followTruncation(always = false): Promise<boolean> {
    const handle = this.handle!;
    const stats = await handle.stat({ bigint: true });
    const changed = stats.size !== this.lastSize;
    this.lastSize = stats.size;
    if (!changed && !always) return false;
    const shorter = stats.size < BigInt(this.readPosition);
    if (!shorter && (await sameBeginning(handle, this.tracked!.fingerprint))) return false;
    await this.readRestFromCopy();
    this.logger.info(
      { previousOffset: this.offset, size: Number(stats.size) },
      'file truncated (copytruncate): reading it again from the start',
    );
    this.splitter.reset(0);
    this.readPosition = 0;
    this.offset = 0;
    this.tracked!.fingerprint = { length: 0, sha256: '' };
    await this.extendFingerprint(Number(stats.size));
    await this.persist(true);
    return true;
  }

  /** Reads and hands over every complete line up to the end of the file. */
  private async drain(): Promise<void> {
    const handle = this.handle!;
    const signal = this.stopping.signal;
    const startedAt = Date.now();
    let lastProgressAt = startedAt;
    let linesRead = 0;
    let pending: SourceLine[] = [];
    while (!signal.aborted) {
      const { bytesRead } = await handle.read(this.buffer, 0, this.buffer.length, this.readPosition);
      if (bytesRead === 0) break;
      this.readPosition += bytesRead;
      for (const line of this.splitter.push(this.buffer.subarray(0, bytesRead))) pending.push(line);
      if (pending.length >= BATCH_LINES) {
        linesRead += pending.length;
        if (!(await this.ingest(pending))) return;
        pending = [];
        // Truncated (copytruncate) while this batch waited or while catching up: what follows the
        // read position now is the new file's, and is read from its start, not from here.
        if (await this.followTruncation(true)) continue;
        await this.persist(false); // a long catch-up keeps its progress too
      }
      if (Date.now() - lastProgressAt >= PROGRESS_LOG_INTERVAL_MS) {
        lastProgressAt = Date.now();
        const { size } = await handle.stat();
        this.logger.info({ linesRead, offset: this.offset, size }, 'catching up with the file');
      }
    }
    if (pending.length > 0) {
      linesRead += pending.length;
      if (!(await this.ingest(pending))) return;
      if (await this.followTruncation(true)) return; // the next poll reads the new file
    }
    if (lastProgressAt !== startedAt) {
      this.logger.info(
        { linesRead, offset: this.offset, seconds: (Date.now() - startedAt) / 1000 },
        'caught up',
      );
    }
    await this.extendFingerprint(this.readPosition);
  }

  private ingest(lines: readonly SourceLine[]): Promise<boolean> {
    return this.batcher.ingest(lines, this.stopping.signal, (last) => {
      this.offset = last.end;
    });
  }

  /** The writer has moved on: its unterminated last line, if any, will not be completed. */
  private async finishFile(): Promise<void> {
    const last = this.splitter.flush();
    if (last !== undefined && !(await this.ingest([last]))) return;
    await this.closeHandle();
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    this.pendingRotation = undefined;
    await handle?.close().catch(() => {});
  }

  /** Fingerprints up to FINGERPRINT_BYTES of the beginning, as far as the file has been seen. */
  private async extendFingerprint(seen: number): Promise<void> {
    const tracked = this.tracked!;
    const length = Math.min(FINGERPRINT_BYTES, seen);
    if (length <= tracked.fingerprint.length) return;
    tracked.fingerprint = (await fingerprintOf(this.handle!, length)) ?? tracked.fingerprint;
  }

  private async loadSaved(): Promise<SavedOffset | undefined> {
    let text: string;
    try {
      text = await readFile(this.stateFile, 'utf8');
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    try {
      const saved = JSON.parse(text) as Partial<SavedOffset>;
      const { ino, offset, fingerprint } = saved;
      const valid =
        typeof ino === 'string' &&
        Number.isSafeInteger(offset) &&
        Number.isSafeInteger(fingerprint?.length) &&
        fingerprint!.length >= 0 &&
        fingerprint!.length <= FINGERPRINT_BYTES &&
        typeof fingerprint?.sha256 === 'string';
      if (valid) return saved as SavedOffset;
    } catch {
      // falls through
    }
    this.logger.warn({ stateFile: this.stateFile }, 'saved file offset unreadable: ignoring it');
    return undefined;
  }

  /** Saves the offset; a failure is logged, not fatal: reading goes on, a restart may re-read lines. */
  private async persist(force: boolean): Promise<void> {
    try {
      await this.save(force);
    } catch (err) {
      this.report(
        'error',
        `save: ${(err as Error).message}`,
        { err, stateFile: this.stateFile },
        'could not save the file offset',
      );
    }
  }

  /** Writes the offset (temp file + rename, flushed): at most every SAVE_INTERVAL_MS unless forced. */
  private async save(force: boolean): Promise<void> {
    const tracked = this.tracked;
    if (tracked === undefined) return;
    const key = `${tracked.dev}:${tracked.ino}:${this.offset}:${tracked.fingerprint.sha256}`;
    if (key === this.lastSaved) return;
    if (!force && Date.now() - this.lastSaveAt < SAVE_INTERVAL_MS) return;
    const state: SavedOffset = {
      path: this.config.path,
      dev: tracked.dev,
      ino: tracked.ino,
      offset: this.offset,
      fingerprint: tracked.fingerprint,
      saved_at: new Date().toISOString(),
    };
    makeDirectory(dirname(this.stateFile));
    const temp = `${this.stateFile}.tmp`;
    // Flushed before the rename so a crash leaves the old offset or the new one, never an empty file.
    await writeFile(temp, JSON.stringify(state) + '\n', { flush: true });
    await rename(temp, this.stateFile);
    this.lastSaved = key;
    this.lastSaveAt = Date.now();
  }

  /** Logs a lasting condition once, until it changes. */
  private report(level: 'info' | 'error', problem: string, fields: object, message: string): void {
    if (this.problem === problem) return;
    this.problem = problem;
    this.logger[level](fields, message);
  }
}
