import { errorCode } from '../util/error.ts';
import { MAX_RETRY_AFTER_MS } from './backoff.ts';
import { redactSecrets } from '../util/logger.ts';

/**
 * Errors a destination throws from `send`, and how the delivery engine classifies them.
 * Retryable: network errors, timeouts, 408, 425, 429, 5xx except 501. Permanent: other 4xx, 501,
 * payload errors. Both lists can be overridden per destination (`retry.retryable_statuses`,
 * `retry.permanent_statuses`).
 */

/** The remote answered with a non-success status. */
export class HttpStatusError extends Error {
  readonly status: number;
  /** From `Retry-After` (seconds or HTTP date), in ms. */
  readonly retryAfterMs: number | undefined;
  readonly body: string;
  constructor(status: number, body: string, retryAfterMs?: number) {
    super(statusMessage(status, body));
    this.name = 'HttpStatusError';
    this.status = status;
    this.body = body;
    this.retryAfterMs = retryAfterMs;
  }
}

/** A status error's message: the beginning of the body (which may be a whole HTML page). */
function statusMessage(status: number, body: string): string {
  return `HTTP ${status}${body ? `: ${body.slice(0, 300)}` : ''}`;
}

/** The events cannot be delivered by this destination whatever the retries (bad payload, rejected data). */
export class PermanentError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/** A failure worth retrying that is not an HTTP status (broker unavailable, queue full…). */
export class RetryableError extends Error {
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options?: ErrorOptions & { retryAfterMs?: number }) {
    super(message, options);
    this.name = 'RetryableError';
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** One event of a batch that the receiver refused for good, by its index in the batch. */
export interface RejectedEvent {
  index: number;
  message: string;
}

/** Events of a batch, by index, that were not delivered for one reason (`error`). */
export interface FailedEvents {
  indices: readonly number[];
  error: unknown;
}

/**
 * Thrown by a destination whose receiver took a batch in part: the `rejected` events were refused for
 * good (dead letters or the fallback); the `failed` ones were not delivered (a part of a split batch
 * that failed) and are retried or given up as their error is classified, as if each group had been a
 * batch of its own; every other event of the batch was delivered.
 */
export class PartialRejectionError extends Error {
  readonly rejected: readonly RejectedEvent[];
  readonly failed: readonly FailedEvents[];
  constructor(rejected: readonly RejectedEvent[], failed: readonly FailedEvents[] = []) {
    const notDelivered = failed.reduce((n, f) => n + f.indices.length, 0);
    super(
      `the receiver refused ${rejected.length} events of the batch` +
        (notDelivered > 0 ? `; ${notDelivered} were not delivered` : ''),
    );
    this.name = 'PartialRejectionError';
    this.rejected = rejected;
    this.failed = failed;
  }
}

export interface Classification {
  retryable: boolean;
  retryAfterMs?: number;
  /** Short label for metrics: the status code, the error code, `timeout`, `permanent`… */
  reason: string;
  message: string;
}

export interface StatusOverrides {
  retryable_statuses?: number[];
  permanent_statuses?: number[];
}

const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} +\d{1,2} \d\d:\d\d:\d\d \d{4}$/;

/**
 * Parses `Retry-After` (delta-seconds, also with a fraction, or an HTTP date) into milliseconds, at
 * most MAX_RETRY_AFTER_MS. A date must name its day or month: V8's lenient Date.parse would read
 * a number such as `7200.5` as a year.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (text === undefined || text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.min(Math.ceil(Number(text) * 1000), MAX_RETRY_AFTER_MS);
  if (!/[A-Za-z]/.test(text)) return undefined;
  // asctime (`Sun Nov  6 08:49:37 1994`) names no zone and means GMT (RFC 9110 §5.6.7); V8 would
  // read it in the local time zone.
  const date = Date.parse(ASCTIME.test(text) ? `${text} GMT` : text);
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - now), MAX_RETRY_AFTER_MS);
}

export function isRetryableStatus(status: number, overrides: StatusOverrides = {}): boolean {
  if (overrides.permanent_statuses?.includes(status)) return false;
  if (overrides.retryable_statuses?.includes(status)) return true;
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status !== 501);
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'ABORT_ERR',
]);

/**
 * Decides what to do with an error thrown by a destination's `send`. `secrets` (the config's
 * secretValues) are replaced in its message, which /healthz and dead letters show: a receiver's
 * answer may echo the request's credentials. A status error's body is redacted before it is cut, so
 * no cut leaves the start of a secret.
 */
export function classify(
  err: unknown,
  overrides: StatusOverrides = {},
  secrets: readonly string[] = [],
): Classification {
  const classification = classifyUnredacted(err, overrides);
  const message =
    err instanceof HttpStatusError
      ? statusMessage(err.status, redactSecrets(err.body, secrets))
      : redactSecrets(classification.message, secrets);
  return { ...classification, message };
}

function classifyUnredacted(err: unknown, overrides: StatusOverrides): Classification {
  const error = err instanceof Error ? err : new Error(String(err));
  if (error instanceof HttpStatusError) {
    return {
      retryable: isRetryableStatus(error.status, overrides),
      ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
      reason: String(error.status),
      message: error.message,
    };
  }
  if (error instanceof PermanentError)
    return { retryable: false, reason: 'undeliverable', message: error.message };
  if (error instanceof RetryableError) {
    return {
      retryable: true,
      ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
      reason: 'retryable',
      message: error.message,
    };
  }
  const code = errorCode(error) ?? errorCode(error.cause);
  // undici refusing the request itself (a header it cannot send…): no retry can change that.
  if (code === 'UND_ERR_INVALID_ARG')
    return { retryable: false, reason: 'invalid_request', message: error.message };
  if (code !== undefined && TIMEOUT_CODES.has(code))
    return { retryable: true, reason: 'timeout', message: error.message };
  if (error.name === 'TimeoutError' || error.name === 'AbortError')
    return { retryable: true, reason: 'timeout', message: error.message };
  // Network errors and anything unexpected are retried: the retry budget bounds them.
  return { retryable: true, reason: code ?? 'error', message: error.message };
}
