import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { RetryConfig } from '../config/types.ts';
import { backoffDelay } from '../delivery/backoff.ts';
import { JournalUnavailableError } from '../delivery/journal.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { Pipeline } from '../routing/pipeline.ts';

/** Backoff while the pipeline refuses events (journal full or unwritable): quick first, capped at 5 s. */
const ACCEPT_RETRY: RetryConfig = {
  initial_interval: 100,
  max_interval: 5000,
  multiplier: 2,
  jitter: 0.2,
  max_attempts: 0,
  max_elapsed_time: 0,
};
/** While the pipeline refuses events, log at most this often. */
const FAILURE_LOG_INTERVAL_MS = 30_000;

/**
 * `pipeline.accept(events, kind)` until it resolves (true) or `signal` aborts (false), backing off
 * while it refuses them (journal full, unwritable or closing): sources whose input cannot be read
 * again (a gRPC stream, stdin) or whose offset must not advance hold the events meanwhile.
 * `onRefused` runs at each refusal (e.g. to pause the input). Logs at most every 30 s.
 */
export async function acceptWithRetry(
  pipeline: Pipeline,
  kind: string,
  events: readonly FalcoEvent[],
  logger: Logger,
  signal: AbortSignal,
  onRefused: () => void = () => {},
): Promise<boolean> {
  if (events.length === 0) return true;
  let failures = 0;
  let lastLogAt = 0;
  for (;;) {
    try {
      await pipeline.accept(events, kind);
      if (failures > 0) logger.info({ attempts: failures + 1 }, 'events accepted again');
      return true;
    } catch (err) {
      failures++;
      onRefused();
      if (signal.aborted) return false;
      const delay = backoffDelay(ACCEPT_RETRY, failures);
      if (Date.now() - lastLogAt >= FAILURE_LOG_INTERVAL_MS) {
        lastLogAt = Date.now();
        const fields = { err, events: events.length, attempts: failures, retryInMs: delay };
        // A full or closing journal is expected to pass; anything else is a bug worth an error.
        if (err instanceof JournalUnavailableError)
          logger.warn(fields, 'journal unavailable: holding events');
        else logger.error(fields, 'pipeline refused events: holding them');
      }
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        return false; // aborted: the caller keeps its position
      }
    }
  }
}
