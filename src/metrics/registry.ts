import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { HotCounter } from './hot-counter.ts';

/**
 * The one Prometheus registry of a process. Everything that counts registers here; the ingest port's
 * /metrics (and the exporter listener) serve it. Wrapped so a later move to @prometheus-io/client is
 * one file.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Falcosidekick's `falcosecurity_falcosidekick_inputs_total{source="requests",status}`. */
  readonly sidekickInputs = new HotCounter({
    name: 'falcosecurity_falcosidekick_inputs_total',
    help: '', // as Falcosidekick registers it
    labelNames: ['source', 'status'] as const,
    registers: [this.registry],
  });

  /** Falcosidekick's `falcosecurity_falcosidekick_outputs_total{destination,status}`. */
  readonly sidekickOutputs = new HotCounter({
    name: 'falcosecurity_falcosidekick_outputs_total',
    help: '',
    labelNames: ['destination', 'status'] as const,
    registers: [this.registry],
  });

  /**
   * Eyrie: events by ingest source (http, grpc, file, …) and outcome: accepted, rejected (invalid),
   * refused (http only: valid, but not taken: its request was answered 503, or 500 on an unexpected
   * error; other sources retry until accepted).
   */
  readonly ingestEvents = new HotCounter({
    name: 'eyrie_ingest_events_total',
    help: 'Events received, by source and outcome',
    labelNames: ['source', 'outcome'] as const,
    registers: [this.registry],
  });

  /** Eyrie: rejected requests by HTTP status and reason. */
  readonly ingestRejections = new HotCounter({
    name: 'eyrie_ingest_rejected_requests_total',
    help: 'Ingest requests answered with an error, by status code and reason',
    labelNames: ['code', 'reason'] as const,
    registers: [this.registry],
  });

  /** Events not counted because a per-event counter reached `metrics.max_series`. */
  readonly seriesOverflow = new Counter({
    name: 'eyrie_metrics_series_overflow_total',
    help: 'Events not counted in a per-event metric because it reached metrics.max_series label series',
    labelNames: ['metric'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
