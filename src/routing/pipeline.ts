import { asError } from '../util/error.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { Enricher } from '../enrich/enrich.ts';
import type { Router, DestinationHealth } from './router.ts';
import type { Logger } from 'pino';

/**
 * What every source calls with validated events: enrich, hand to the router, then count. Sources
 * answer their sender only after `accept` resolves (for the durable router: after the commit).
 */
export class Pipeline {
  private readonly enrich: Enricher;
  private readonly router: Router;
  private readonly logger: Logger;
  private readonly onAccepted: (event: FalcoEvent) => void;

  constructor(
    enrich: Enricher,
    router: Router,
    logger: Logger,
    onAccepted: (event: FalcoEvent) => void = () => {},
  ) {
    this.enrich = enrich;
    this.router = router;
    this.logger = logger;
    this.onAccepted = onAccepted;
  }

  /**
   * Undefined when the events are already handed over (nothing durable to wait for), else a promise
   * that settles once they are; a refusal is always a rejected promise.
   */
  accept(events: readonly FalcoEvent[], source: string): Promise<void> | undefined {
    const enriched: FalcoEvent[] = [];
    const counted: FalcoEvent[] = [];
    let routed: Promise<void> | undefined;
    try {
      for (const e of events) {
        const result = this.enrich(e);
        if (result.warnings.length > 0)
          this.logger.warn({ source, uuid: e.uuid, warnings: result.warnings }, 'enrichment');
        enriched.push(result.event);
        counted.push(result.counted);
      }
      routed = this.router.route(enriched);
    } catch (err) {
      return Promise.reject(asError(err));
    }
    if (routed === undefined) {
      this.accepted(counted);
      return undefined;
    }
    return routed.then(() => this.accepted(counted));
  }

  private accepted(events: readonly FalcoEvent[]): void {
    for (const e of events) this.onAccepted(e);
  }

  health(): DestinationHealth[] {
    return this.router.health();
  }
}
