import type { FalcoEvent } from '../event/falco-event.ts';
import { TEST_RULE } from '../event/falco-event.ts';
import { atLeast } from '../event/priority.ts';
import type { DestinationConfig } from '../config/types.ts';

/** Where accepted, enriched events go. The durable delivery engine implements this. */
export interface Router {
  /**
   * Takes ownership of the events. Returns a promise when the hand-over has to wait (a journal
   * commit) and undefined when it is already done; a refusal is always a rejected promise. Not
   * creating a promise when there is nothing to wait for saves the hot ingest path several
   * microtask turns per request.
   */
  route(events: readonly FalcoEvent[]): Promise<void> | undefined;
  health(): DestinationHealth[];
  close(): Promise<void>;
}

export interface DestinationHealth {
  name: string;
  type: string;
  healthy: boolean;
  lastError?: string;
  lastErrorAt?: string;
  /** Events waiting (durable router). */
  queued?: number;
  /** Seconds since the oldest of them was queued, while any is. */
  oldestAgeSeconds?: number;
  deadLetters?: number;
}

/** Falcosidekick's routing: a minimum priority per destination, which its test event bypasses. */
export function passesMinimumPriority(event: FalcoEvent, config: DestinationConfig): boolean {
  const minimum = config.filter.minimum_priority;
  return minimum === undefined || event.rule === TEST_RULE || atLeast(event.priority, minimum);
}
