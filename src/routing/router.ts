import type { Logger } from 'pino';
import type { FalcoEvent } from '../event/falco-event.ts';
import { TEST_RULE } from '../event/falco-event.ts';
import { atLeast } from '../event/priority.ts';
import type { DestinationConfig } from '../config/types.ts';
import type { Destination } from '../destinations/types.ts';
import type { Metrics } from '../metrics/registry.ts';

/** Where accepted, enriched events go. The durable delivery engine implements this. */
export interface Router {
  /** Takes ownership of the events; resolves once they are handed over (durably, for durable routers). */
  route(events: readonly FalcoEvent[]): Promise<void>;
  health(): DestinationHealth[];
  close(): Promise<void>;
}

export interface DestinationHealth {
  name: string;
  type: string;
  healthy: boolean;
  lastError?: string;
  lastErrorAt?: string;
}

/** Falcosidekick's routing: a minimum priority per destination, which its test event bypasses. */
export function passesMinimumPriority(event: FalcoEvent, config: DestinationConfig): boolean {
  const minimum = config.filter.minimum_priority;
  return minimum === undefined || event.rule === TEST_RULE || atLeast(event.priority, minimum);
}

interface Route {
  config: DestinationConfig;
  destination: Destination;
  health: DestinationHealth;
}

/**
 * Direct, in-memory fan-out with Falcosidekick's semantics (at most once, one send per event per
 * destination, failures logged and counted). It proves the ingest path; the durable engine with
 * journal, queues and retries replaces it.
 */
export class DirectRouter implements Router {
  private readonly routes: Route[];
  private readonly inFlight = new Set<Promise<void>>();

  private readonly metrics: Metrics;
  private readonly logger: Logger;

  constructor(routes: { config: DestinationConfig; destination: Destination }[], metrics: Metrics, logger: Logger) {
    this.metrics = metrics;
    this.logger = logger;
    this.routes = routes.map((r) => ({
      ...r,
      health: { name: r.config.name, type: r.config.type, healthy: true },
    }));
  }

  route(events: readonly FalcoEvent[]): Promise<void> {
    for (const route of this.routes) {
      const selected = events.filter((e) => passesMinimumPriority(e, route.config));
      if (selected.length === 0) continue;
      const sending = this.deliver(route, selected);
      this.inFlight.add(sending);
      void sending.finally(() => this.inFlight.delete(sending));
    }
    return Promise.resolve();
  }

  private async deliver(route: Route, events: FalcoEvent[]): Promise<void> {
    try {
      await route.destination.send(events);
      this.metrics.sidekickOutputs.inc({ destination: route.config.name, status: 'ok' }, events.length);
      route.health.healthy = true;
    } catch (err) {
      this.metrics.sidekickOutputs.inc({ destination: route.config.name, status: 'error' }, events.length);
      route.health.healthy = false;
      route.health.lastError = (err as Error).message;
      route.health.lastErrorAt = new Date().toISOString();
      this.logger.error({ destination: route.config.name, err }, 'delivery failed');
    }
  }

  health(): DestinationHealth[] {
    return this.routes.map((r) => ({ ...r.health }));
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled(this.routes.map((r) => r.destination.close()));
  }
}
