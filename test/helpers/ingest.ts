import { pino } from 'pino';
import type { Enricher } from '../../src/enrich/enrich.ts';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config/load.ts';
import type { EyrieConfig } from '../../src/config/types.ts';
import type { FalcoEvent } from '../../src/event/falco-event.ts';
import { JournalUnavailableError } from '../../src/delivery/journal.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { Pipeline } from '../../src/routing/pipeline.ts';
import type { DestinationHealth, Router } from '../../src/routing/router.ts';
import { buildIngestApp, type IngestAppOptions } from '../../src/sources/http/server.ts';

/** Starts refusing the next `refusals` batches. */
export function refusingRouter(refusals: number): CaptureRouter {
  const router = new CaptureRouter();
  router.refusals = refusals;
  return router;
}

/** A router that records what it is given, for asserting on what ingest accepted. */
export class CaptureRouter implements Router {
  readonly events: FalcoEvent[] = [];
  healthy = true;
  /** When set, every batch is refused with it (as the journal refuses when it cannot persist). */
  refuse: Error | undefined;
  /** Refuse this many batches more, as a full journal does (Infinity: all of them). */
  refusals = 0;
  /** Batches offered, refused ones included. */
  calls = 0;
  /** While set, every batch waits for it first. */
  gate: Promise<void> | undefined;
  async route(events: readonly FalcoEvent[]): Promise<void> {
    this.calls++;
    await this.gate;
    if (this.refuse) throw this.refuse;
    if (this.refusals > 0) {
      this.refusals--;
      throw new JournalUnavailableError('journal is over its disk cap');
    }
    this.events.push(...events);
  }
  health(): DestinationHealth[] {
    return [
      {
        name: 'capture',
        type: 'test',
        healthy: this.healthy,
        ...(this.healthy ? {} : { lastError: 'down' }),
      },
    ];
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Eyrie's defaults with overrides, as the loader resolves them. */
export function testConfig(mutate: (c: EyrieConfig) => void = () => {}): EyrieConfig {
  const { config } = loadConfig({ env: {} });
  config.listen.address = '127.0.0.1';
  config.listen.port = 0;
  mutate(config);
  return config;
}

export const silentLogger = pino({ level: 'silent' });

/** No enrichment: each event is passed on (and counted) as it came. */
export const identityEnricher: Enricher = (event) => ({ event, warnings: [], counted: event });

export interface TestIngest {
  app: FastifyInstance;
  url: string;
  router: CaptureRouter;
  metrics: Metrics;
  close(): Promise<void>;
}

/** Starts an ingest listener on a free loopback port with an identity enricher. */
export async function startIngest(
  config = testConfig(),
  extra: Partial<IngestAppOptions> = {},
): Promise<TestIngest> {
  const router = new CaptureRouter();
  const metrics = new Metrics({ defaultMetrics: false });
  const pipeline = new Pipeline(identityEnricher, router, silentLogger);
  const app = buildIngestApp({ config, pipeline, metrics, logger: silentLogger, ...extra });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url, router, metrics, close: () => app.close() };
}
