import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import cliProgress from 'cli-progress';
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
}

export interface SendSummary {
  sent: number;
  accepted: number;
  rejected: number;
  failed: number;
  errors: string[];
}

/** Lines of NDJSON, or the elements of a JSON array file, as raw JSON texts. */
async function* readEvents(input: Readable): AsyncGenerator<string> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let arrayText: string[] | undefined;
  for await (const raw of lines) {
    const line = raw.trim();
    if (arrayText) {
      arrayText.push(raw);
      continue;
    }
    if (line === '') continue;
    if (line.startsWith('[')) {
      arrayText = [raw];
      continue;
    }
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

  const post = async (lines: string[]) => {
    const single = lines.length === 1;
    try {
      const res = await request(options.url, {
        method: 'POST',
        dispatcher,
        headers: { ...headers, 'content-type': single ? 'application/json' : 'application/x-ndjson' },
        body: lines.join('\n'),
      });
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) {
        let rejected = 0;
        if (!single && text !== '') {
          const answer = JSON.parse(text) as {
            rejected?: number;
            errors?: { index: number; message: string }[];
          };
          rejected = answer.rejected ?? 0;
          for (const e of answer.errors ?? []) summary.errors.push(`event ${e.index}: ${e.message}`);
        }
        summary.accepted += lines.length - rejected;
        summary.rejected += rejected;
      } else if (
        res.statusCode >= 400 &&
        res.statusCode < 500 &&
        res.statusCode !== 401 &&
        res.statusCode !== 403
      ) {
        summary.rejected += lines.length;
        summary.errors.push(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
      } else {
        summary.failed += lines.length;
        summary.errors.push(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
      }
    } catch (err) {
      summary.failed += lines.length;
      summary.errors.push((err as Error).message);
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
      const input = source === '-' ? process.stdin : createReadStream(source);
      let pending: string[] = [];
      for await (const line of readEvents(input)) {
        pending.push(line);
        if (pending.length >= options.batch) {
          await launch(pending);
          pending = [];
        }
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
