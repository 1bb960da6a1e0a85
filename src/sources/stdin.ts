import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { LineBatcher, LineSplitter, type SourceLine } from './line-batcher.ts';
import type { EventSource, SourceContext } from './source.ts';

/**
 * Reads Falco alerts as JSON lines from standard input: Falco's program_output with `eyrie serve
 * --stdin` as the program (keep_alive: true keeps one process and one pipe for every alert). The
 * input is paused while the pipeline takes a batch, so a full journal pushes back on Falco's pipe
 * instead of filling memory.
 */
export class StdinSource implements EventSource {
  readonly kind = 'stdin';
  readonly target = '-';
  private readonly input: Readable;
  private readonly onEnd: (() => void) | undefined;
  private readonly logger: Logger;
  private readonly batcher: LineBatcher;
  private readonly splitter = new LineSplitter();
  private readonly stopping = new AbortController();
  private inFlight: Promise<void> | undefined;
  private finishing: Promise<void> | undefined;
  private reading = false;
  private started = false;
  private ended = false;

  constructor(context: SourceContext, input: Readable = process.stdin, onEnd?: () => void) {
    this.input = input;
    this.onEnd = onEnd;
    this.logger = context.logger;
    this.batcher = new LineBatcher('stdin', context);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.reading = true;
    this.input.on('data', this.onData);
    this.input.once('end', this.onInputEnd);
    // Kept after close: an 'error' without a listener would end the process.
    this.input.on('error', this.onError);
    this.input.resume(); // in case it was paused before: a 'data' listener alone would not start it
  }

  ready(): boolean {
    return this.reading;
  }

  async close(): Promise<void> {
    this.stopping.abort();
    this.reading = false;
    this.input.off('data', this.onData);
    this.input.off('end', this.onInputEnd);
    this.input.pause();
    await this.inFlight;
    await this.finishing;
    // Read from the pipe but not handed over (the stream's buffer, a partial line): gone with the
    // process too, and counted in the same warning's terms.
    let unread = 0;
    for (let chunk: unknown; (chunk = this.input.read()) !== null;) {
      unread += this.splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)).length;
    }
    if (this.splitter.flush() !== undefined) unread++;
    if (unread > 0) {
      this.logger.warn(
        { lines: unread },
        'closed with lines read from stdin not handed over yet: they are lost',
      );
    }
  }

  private readonly onData = (chunk: Buffer | string): void => {
    const lines = this.splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (lines.length === 0) return;
    this.input.pause();
    this.inFlight = this.ingest(lines).finally(() => {
      this.inFlight = undefined;
      if (!this.stopping.signal.aborted && !this.ended) this.input.resume();
    });
  };

  private readonly onInputEnd = (): void => {
    this.finishing ??= this.finish();
  };

  private readonly onError = (err: Error): void => {
    this.logger.error({ err }, 'reading stdin failed');
    this.finishing ??= this.finish();
  };

  /** End of input: the last line may lack its newline (a writer that closed mid-way, or `printf`). */
  private async finish(): Promise<void> {
    this.ended = true;
    await this.inFlight;
    const last = this.splitter.flush();
    if (last !== undefined && !this.stopping.signal.aborted) await this.ingest([last]);
    this.reading = false;
    this.logger.info('stdin closed');
    this.onEnd?.();
  }

  private async ingest(lines: readonly SourceLine[]): Promise<void> {
    let takenUpTo = -1;
    const done = await this.batcher.ingest(lines, this.stopping.signal, (last) => (takenUpTo = last.end));
    if (done) return;
    // Stdin cannot be read twice: say what closing while the journal refused events cost.
    const lost = lines.filter((line) => line.end > takenUpTo).length;
    this.logger.warn({ lines: lost }, 'closed while the pipeline refused lines from stdin: they are lost');
  }
}
