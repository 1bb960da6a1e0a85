import type { Logger } from 'pino';
import { acceptWithRetry } from './accept.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { CounterHandle } from '../metrics/hot-counter.ts';
import { decodeBody } from './http/decode.ts';
import type { SourceContext } from './source.ts';
import { decodeUtf8AsGo } from '../event/go-utf8.ts';

/**
 * What the line-oriented sources (a tailed file_output, stdin from program_output) share: cutting
 * bytes into lines, decoding them as Falco events, and handing them to the pipeline with retries.
 */

/** Events per `pipeline.accept` call: one journal group commit's worth. */
export const BATCH_LINES = 512;
/**
 * Longest line kept in memory while waiting for its newline. A Falco alert is a few KiB; anything
 * this long is not one (a binary file, a writer that never ends its line).
 */
export const MAX_LINE_BYTES = 1024 * 1024;
/** How much of a bad line goes into the log. */
const LOGGED_LINE_CHARS = 200;
/** Invalid lines logged per minute; the rest are counted and summed up in the next log line. */
const INVALID_LOGS_PER_MINUTE = 10;

/** One line of input, newline excluded, with its byte span in the input. */
export interface SourceLine {
  text: string;
  /** Byte offset of the line's first byte. */
  start: number;
  /** Byte offset just past its newline: where reading resumes once this line is handled. */
  end: number;
  /** Longer than MAX_LINE_BYTES: dropped unread (`text` is its beginning). */
  tooLong?: boolean;
}

const NEWLINE = 0x0a;

/**
 * Cuts a byte stream into complete lines, keeping a partial last line until its newline arrives.
 * Splits on the byte 0x0A, which never occurs inside a multi-byte UTF-8 character, so each line
 * decodes on its own.
 */
export class LineSplitter {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Absolute offset of the first byte not yet returned as part of a line. */
  private lineStart: number;
  /** Inside a line longer than MAX_LINE_BYTES (or one to skip): discard until its newline. */
  private discarding: 'too-long' | 'silently' | undefined;
  private discardedHead = '';

  constructor(position = 0) {
    this.lineStart = position;
  }

  /** Offset of the first byte of the pending partial line (= the end of the last complete line). */
  get position(): number {
    return this.lineStart;
  }

  /** Bytes held for a line that has no newline yet. */
  get pendingBytes(): number {
    return this.partialBytes;
  }

  /** Forgets any partial line and continues at `position` (a truncated or new file). */
  reset(position: number): void {
    this.partial = [];
    this.partialBytes = 0;
    this.lineStart = position;
    this.discarding = undefined;
    this.discardedHead = '';
  }

  /** Drops everything up to the next newline without reporting it (the tail of a line already past). */
  skipToNextLine(): void {
    this.discarding = 'silently';
  }

  /** The complete lines `chunk` finishes. `chunk` may be reused by the caller afterwards. */
  push(chunk: Buffer): SourceLine[] {
    const lines: SourceLine[] = [];
    let from = 0;
    let newline = chunk.indexOf(NEWLINE, from);
    while (newline !== -1) {
      const end = this.lineStart + this.partialBytes + (newline - from) + 1;
      if (this.discarding !== undefined) {
        if (this.discarding === 'too-long') {
          lines.push({ text: this.discardedHead, start: this.lineStart, end, tooLong: true });
        }
        this.discarding = undefined;
        this.discardedHead = '';
      } else {
        const piece = chunk.subarray(from, newline);
        const bytes = this.partialBytes === 0 ? piece : Buffer.concat([...this.partial, piece]);
        lines.push({ text: decodeUtf8AsGo(bytes), start: this.lineStart, end });
      }
      this.partial = [];
      this.partialBytes = 0;
      this.lineStart = end;
      from = newline + 1;
      newline = chunk.indexOf(NEWLINE, from);
    }
    if (from < chunk.length) this.hold(chunk.subarray(from));
    return lines;
  }

  /** At the end of the input: the partial last line, if any, as a line of its own. */
  flush(): SourceLine | undefined {
    const tooLong = this.discarding === 'too-long';
    const silently = this.discarding === 'silently';
    const text = tooLong ? this.discardedHead : decodeUtf8AsGo(Buffer.concat(this.partial));
    const start = this.lineStart;
    const end = start + this.partialBytes;
    this.reset(end);
    if (silently || end === start) return undefined;
    return tooLong ? { text, start, end, tooLong } : { text, start, end };
  }

  private hold(rest: Buffer): void {
    if (this.discarding !== undefined) {
      // Still counted so offsets stay exact, but not kept.
      this.partialBytes += rest.length;
      return;
    }
    // Copied: the caller reuses its read buffer.
    this.partial.push(Buffer.from(rest));
    this.partialBytes += rest.length;
    if (this.partialBytes > MAX_LINE_BYTES) {
      this.discardedHead = Buffer.concat(this.partial)
        .subarray(0, LOGGED_LINE_CHARS * 4)
        .toString('utf8');
      this.partial = [];
      this.discarding = 'too-long';
    }
  }
}

/**
 * Decodes lines into Falco events, hands them to the pipeline in batches, retries while the pipeline
 * refuses them (journal full or unwritable) and counts `eyrie_ingest_events_total{source, outcome}`.
 * Nothing is dropped on a refusal: the caller learns when a batch is accepted and advances only then.
 */
export class LineBatcher {
  private readonly kind: string;
  private readonly context: SourceContext;
  private readonly logger: Logger;
  private readonly accepted: CounterHandle;
  private readonly rejected: CounterHandle;
  private invalidLogWindowStart = 0;
  private invalidLogged = 0;
  private invalidSuppressed = 0;

  /** `logger` names the input (the file's path); the context's is already scoped to the source. */
  constructor(kind: string, context: SourceContext, logger: Logger = context.logger) {
    this.kind = kind;
    this.context = context;
    this.logger = logger;
    this.accepted = context.metrics.ingestEvents.handle({ source: kind, outcome: 'accepted' });
    this.rejected = context.metrics.ingestEvents.handle({ source: kind, outcome: 'rejected' });
  }

  /**
   * Decodes, accepts and counts `lines` in batches of BATCH_LINES, calling `onAccepted` with the last
   * line of each batch once the pipeline has it. Resolves false when `signal` stopped it first: the
   * lines after the last `onAccepted` were not taken.
   */
  async ingest(
    lines: readonly SourceLine[],
    signal: AbortSignal,
    onAccepted: (last: SourceLine) => void = () => {},
  ): Promise<boolean> {
    for (let i = 0; i < lines.length; i += BATCH_LINES) {
      if (signal.aborted) return false;
      const batch = lines.slice(i, i + BATCH_LINES);
      const events = this.decode(batch);
      if (!(await acceptWithRetry(this.context.pipeline, this.kind, events, this.logger, signal)))
        return false;
      this.accepted.inc(events.length);
      onAccepted(batch.at(-1)!);
    }
    return true;
  }

  /** The valid events of `lines`; empty lines are skipped, invalid ones logged and counted. */
  decode(lines: readonly SourceLine[]): FalcoEvent[] {
    const events: FalcoEvent[] = [];
    for (const line of lines) {
      if (line.tooLong) {
        this.reject(line, `line longer than ${MAX_LINE_BYTES} bytes`);
        continue;
      }
      if (line.text.trim() === '') continue;
      try {
        // One NDJSON line, decoded exactly as the HTTP ingest decodes each line of an NDJSON body.
        const decoded = decodeBody(line.text, 'application/x-ndjson', 'falco');
        events.push(...decoded.events);
        for (const error of decoded.errors) this.reject(line, error.message);
      } catch (err) {
        this.reject(line, (err as Error).message);
      }
    }
    return events;
  }

  private reject(line: SourceLine, message: string): void {
    this.rejected.inc();
    const now = Date.now();
    if (now - this.invalidLogWindowStart >= 60_000) {
      this.invalidLogWindowStart = now;
      this.invalidLogged = 0;
    }
    if (this.invalidLogged >= INVALID_LOGS_PER_MINUTE) {
      this.invalidSuppressed++;
      return;
    }
    this.invalidLogged++;
    const suppressed = this.invalidSuppressed;
    this.invalidSuppressed = 0;
    this.logger.warn(
      {
        offset: line.start,
        error: message,
        line: line.text.slice(0, LOGGED_LINE_CHARS),
        ...(suppressed > 0 ? { suppressedSinceLastLog: suppressed } : {}),
      },
      'invalid event line skipped',
    );
  }
}
