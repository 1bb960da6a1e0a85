import type { RetryConfig } from '../config/types.ts';

/** The longest wait a server's Retry-After can impose: a larger (or broken, infinite) value is cut here. */
export const MAX_RETRY_AFTER_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * Exponential backoff with jitter: initial × multiplier^(attempt-1), capped at max_interval, spread by
 * ±jitter. A server's Retry-After wins when it asks for longer, up to MAX_RETRY_AFTER_MS.
 */
export function backoffDelay(
  retry: RetryConfig,
  attempt: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const exponential = retry.initial_interval * Math.pow(retry.multiplier, Math.max(0, attempt - 1));
  const capped = Math.min(retry.max_interval, exponential);
  const spread = capped * retry.jitter * (2 * random() - 1);
  const delay = Math.max(0, Math.round(capped + spread));
  return retryAfterMs !== undefined && retryAfterMs > delay
    ? Math.min(retryAfterMs, MAX_RETRY_AFTER_MS)
    : delay;
}

/** True when another attempt is outside the retry budget (attempts or elapsed time). */
export function budgetExhausted(
  retry: RetryConfig,
  attempts: number,
  firstAttemptAt: number,
  now: number,
): boolean {
  if (retry.max_attempts > 0 && attempts >= retry.max_attempts) return true;
  return pastElapsedBudget(retry, firstAttemptAt, now);
}

/** True when `at` is past the elapsed-time budget of an entry first attempted at `firstAttemptAt`. */
export function pastElapsedBudget(retry: RetryConfig, firstAttemptAt: number, at: number): boolean {
  return retry.max_elapsed_time > 0 && at - firstAttemptAt >= retry.max_elapsed_time;
}
