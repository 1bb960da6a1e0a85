import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import cliProgress from 'cli-progress';
import type { RetryConfig } from '../config/types.ts';
import { backoffDelay } from '../delivery/backoff.ts';
import { classify, isRetryableStatus, parseRetryAfter } from '../delivery/errors.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import { testEvent } from '../event/falco-event.ts';

export interface SendOptions {
  url: string;
  token?: string;
  /** Events per request (NDJSON); 1 = one request per event, as Falco's http_output does. */
  batch: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** Force (or disable) the progress bar; default: when stderr is a terminal. */
  progress?: boolean;
  insecure?: boolean;
  /** How long to keep retrying a batch that failed transiently, in ms; Infinity = never give up. */
  retryForMs?: number;
}

export interface SendSummary {
  sent: number;
  accepted: number;
  rejected: number;
  failed: number;
  errors: string[];
}

/**
 * Retries of a request that failed transiently (connection refused or reset, timeout, 408, 425, 429,
 * 5xx but 501): an Eyrie that restarts comes back within seconds, and program_output alerts have
 * nowhere else to go. The intervals; how long to keep trying is `retryForMs`.
 */
const SEND_RETRY: RetryConfig = {
  initial_interval: 500,
  max_interval: 4000,
  multiplier: 2,
  jitter: 0.2,
  max_attempts: 0,
  max_elapsed_time: 0,
};

/** The default of `--retry-for`: 5 attempts (0.5 + 1 + 2 + 4 s apart) before a batch counts as failed. */
export const DEFAULT_RETRY_FOR_MS = 10_000;

/**
 * Reading a pipe (program_output with keep_alive: true keeps it open for good), a partial batch is
 * posted once no line came for this long instead of waiting for the batch to fill.
 */
const STREAM_IDLE_MS = 50;

const IDLE = Symbol('idle');

/** `next`, or IDLE if it takes longer than `ms`. */
async function nextOrIdle<T>(next: Promise<T>, ms: number): Promise<T | typeof IDLE> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<typeof IDLE>((resolve) => (timer = setTimeout(() => resolve(IDLE), ms)));
  try {
    return await Promise.race([next, idle]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Lines of NDJSON, or the elements of a JSON array file, as raw JSON texts. Only an input whose first
 * line opens an array is one: a later line starting with `[` is a line like any other (the receiver
 * rejects it), not the start of an array that would swallow the rest of a stream.
 */
async function* readEvents(input: Readable): AsyncGenerator<string> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let arrayText: string[] | undefined;
  let first = true;
  for await (const raw of lines) {
    const line = raw.trim();
    if (arrayText) {
      arrayText.push(raw);
      continue;
    }
    if (line === '') continue;
    if (first && line.startsWith('[')) {
      arrayText = [raw];
      continue;
    }
    first = false;
    yield line;
  }
  if (arrayText) {
    // A JSON array: split its elements without losing number precision by re-serializing them.
    const { parseJson, stringifyJson } = await import('../event/json.ts');
    const value = parseJson(arrayText.join('\n'));
    if (!Array.isArray(value)) throw new Error('input starts with "[" but is not a JSON array');
    for (const element of value) yield stringifyJson(element);
  }
}

/**
 * Posts events to an Eyrie (or Falcosidekick) ingest URL: from a file, stdin (Falco's program_output)
 * or the built-in test event. Shows progress and returns what was accepted and rejected.
 */
export async function sendEvents(
  source: string | undefined,
  options: SendOptions,
  log: (line: string) => void,
): Promise<SendSummary> {
  const summary: SendSummary = { sent: 0, accepted: 0, rejected: 0, failed: 0, errors: [] };
  const dispatcher = new Agent({
    connections: options.concurrency,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
    connect: { rejectUnauthorized: options.insecure !== true },
  });
  const headers: Record<string, string> = { 'user-agent': 'eyrie-send' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;

  const showBar = options.progress ?? process.stderr.isTTY;
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          format: 'sending |{bar}| {value} events | accepted {accepted} rejected {rejected} failed {failed}',
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(0, 0, { accepted: 0, rejected: 0, failed: 0 });
  let lastLog = Date.now();
  const tick = () => {
    bar?.setTotal(summary.sent);
    bar?.update(summary.accepted + summary.rejected + summary.failed, summary);
    if (!bar && Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      log(
        `progress: ${summary.sent} sent, ${summary.accepted} accepted, ${summary.rejected} rejected, ${summary.failed} failed`,
      );
    }
  };

  /** One request: undefined once counted, or why it is worth another attempt. */
  const attempt = async (
    lines: string[],
  ): Promise<{ message: string; retryAfterMs?: number } | undefined> => {
    const single = lines.length === 1;
    let status: number;
    let text: string;
    let retryAfter: string | string[] | undefined;
    try {
      const res = await request(options.url, {
        method: 'POST',
        dispatcher,
        headers: { ...headers, 'content-type': single ? 'application/json' : 'application/x-ndjson' },
        body: lines.join('\n'),
      });
      text = await res.body.text();
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
    } catch (err) {
      const classification = classify(err);
      if (classification.retryable) return { message: classification.message };
      summary.failed += lines.length;
      summary.errors.push(classification.message);
      return undefined;
    }
    if (status >= 200 && status < 300) {
      let rejected = 0;
      if (!single && text !== '') {
        try {
          const answer = JSON.parse(text) as {
            rejected?: number;
            errors?: { index: number; message: string }[];
          };
          rejected = answer.rejected ?? 0;
          for (const e of answer.errors ?? []) summary.errors.push(`event ${e.index}: ${e.message}`);
        } catch (err) {
          summary.failed += lines.length;
          summary.errors.push(`HTTP ${status} with an unreadable answer: ${(err as Error).message}`);
          return undefined;
        }
      }
      summary.accepted += lines.length - rejected;
      summary.rejected += rejected;
      return undefined;
    }
    const message = `HTTP ${status}: ${text.slice(0, 300)}`;
    if (isRetryableStatus(status)) {
      const retryAfterMs = parseRetryAfter(retryAfter);
      return retryAfterMs === undefined ? { message } : { message, retryAfterMs };
    }
    if (status >= 400 && status < 500 && status !== 401 && status !== 403) summary.rejected += lines.length;
    else summary.failed += lines.length;
    summary.errors.push(message);
    return undefined;
  };

  const retryForMs = options.retryForMs ?? DEFAULT_RETRY_FOR_MS;
  /** Posts one batch, retrying transient failures for `retryForMs` before counting them as failed. */
  const post = async (lines: string[]) => {
    const firstAttemptAt = Date.now();
    for (let attempts = 1; ; attempts++) {
      const transient = await attempt(lines);
      if (transient === undefined) break;
      const delay = backoffDelay(SEND_RETRY, attempts, transient.retryAfterMs);
      // The next attempt would come after the budget: give up now rather than wait for nothing.
      if (Date.now() + delay - firstAttemptAt > retryForMs) {
        summary.failed += lines.length;
        summary.errors.push(transient.message);
        break;
      }
      if (!bar) log(`retrying ${lines.length} event(s) in ${delay} ms (${transient.message})`);
      await sleep(delay);
    }
    tick();
  };

  const inFlight = new Set<Promise<void>>();
  const launch = async (lines: string[]) => {
    summary.sent += lines.length;
    const p = post(lines).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= options.concurrency) await Promise.race(inFlight);
  };

  try {
    if (source === undefined) {
      await launch([toSidekickJson(testEvent())]);
    } else {
      const streaming = source === '-';
      const input = streaming ? process.stdin : createReadStream(source);
      const lines = readEvents(input);
      let pending: string[] = [];
      let next = lines.next();
      for (;;) {
        const result = streaming && pending.length > 0 ? await nextOrIdle(next, STREAM_IDLE_MS) : await next;
        if (result === IDLE) {
          await launch(pending);
          pending = [];
          continue;
        }
        if (result.done === true) break;
        pending.push(result.value);
        if (pending.length >= options.batch) {
          await launch(pending);
          pending = [];
        }
        // Asked for only now: a read that fails while a launch is awaited would go unhandled.
        next = lines.next();
      }
      if (pending.length > 0) await launch(pending);
    }
    await Promise.all(inFlight);
  } finally {
    bar?.stop();
    await dispatcher.close();
  }
  return summary;
}
