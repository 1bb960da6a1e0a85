/**
 * Lets a repeated log line through at most once per interval, counting the ones it held back, so a
 * failure that repeats per request or per event (a full journal, a CEL error) cannot flood the log.
 */
export class LogThrottle {
  private readonly intervalMs: number;
  private loggedAt = -Infinity;
  private suppressed = 0;

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /**
   * Undefined when the line must be held back (it is counted); otherwise how many were held back
   * since the last one let through. The default clock is monotonic: a wall clock stepped back would
   * hold every line back until it caught up.
   */
  take(now = performance.now()): number | undefined {
    if (now - this.loggedAt < this.intervalMs) {
      this.suppressed++;
      return undefined;
    }
    this.loggedAt = now;
    return this.drain();
  }

  /** How many were held back since the last one let through, counting afresh from here. */
  drain(): number {
    const suppressed = this.suppressed;
    this.suppressed = 0;
    return suppressed;
  }
}
