import type { Logger } from 'pino';
import type { Metrics } from '../metrics/registry.ts';
import type { Pipeline } from '../routing/pipeline.ts';

/**
 * An input that is not the HTTP listener: Falco's legacy gRPC output, a tailed file_output, stdin.
 * It hands validated events to `pipeline.accept(events, kind)` and counts them in
 * `metrics.ingestEvents{source: kind, outcome}`. It takes an event off its input for good (advances a
 * file offset, or lets a gRPC stream run on) only after `accept` resolved: when it rejects (journal
 * full or unwritable, shutting down), the source holds the events, backs off and tries again.
 */
export interface EventSource {
  /** `grpc`, `file` or `stdin`: the `source` label of eyrie_ingest_events_total. */
  readonly kind: string;
  /** What it reads, for logs and /healthz: a socket address, a path. */
  readonly target: string;
  /** Connects or opens, and keeps doing so after failures until closed. Never throws. */
  start(): void;
  /** falco-exporter's readiness: a gRPC stream is open / the file or stdin is being read. */
  ready(): boolean;
  /** Stops reading; resolves once nothing is in flight (offsets saved). */
  close(): Promise<void>;
}

/** What every source is built with. */
export interface SourceContext {
  pipeline: Pipeline;
  metrics: Metrics;
  logger: Logger;
  /** The storage directory (file offsets live under it). */
  dataDir: string;
}
