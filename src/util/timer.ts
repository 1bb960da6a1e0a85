/** Longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days); past it, Node fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A delay that setTimeout honours: at least 0 and at most MAX_TIMER_MS. Callers whose wait may be
 * longer (a Retry-After of a month) check the time again when the timer fires.
 */
export function timerDelay(ms: number): number {
  return Math.min(Math.max(0, ms), MAX_TIMER_MS);
}
