import type { FalcoEvent } from '../event/falco-event.ts';
import type { Router, DestinationHealth } from './router.ts';
import type { Logger } from 'pino';

/** One enrichment step: Falcosidekick's order, compiled from the config (src/enrich). */
export type Enricher = (event: FalcoEvent) => { event: FalcoEvent; warnings: string[] };

/**
 * What every source calls with validated events: enrich, count, then hand to the router. Sources
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

  async accept(events: readonly FalcoEvent[], source: string): Promise<void> {
    const enriched = events.map((e) => {
      const result = this.enrich(e);
      if (result.warnings.length > 0)
        this.logger.warn({ source, uuid: e.uuid, warnings: result.warnings }, 'enrichment');
      return result.event;
    });
    await this.router.route(enriched);
    for (const e of enriched) this.onAccepted(e);
  }

  health(): DestinationHealth[] {
    return this.router.health();
  }
}
