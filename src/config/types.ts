import type { Priority } from '../event/priority.ts';

/**
 * The resolved configuration every part of Eyrie reads: the native YAML, a translated Falcosidekick
 * config.yaml, Falcosidekick env vars and EYRIE_* overrides all end up here (see src/config/load.ts).
 * Durations are milliseconds, sizes bytes.
 */
export interface EyrieConfig {
  listen: ListenConfig;
  auth: IngestAuthConfig;
  enrich: EnrichConfig;
  metrics: MetricsConfig;
  log: LogConfig;
  storage: StorageConfig;
  delivery: DeliveryConfig;
  destinations: DestinationConfig[];
  sources: SourcesConfig;
  exporter: ExporterConfig;
}

/** Inputs besides the HTTP listener: Falco's legacy gRPC output, its file_output, standard input. */
export interface SourcesConfig {
  grpc: GrpcSourceConfig[];
  files: FileSourceConfig[];
  /** Read JSON lines from standard input (Falco's program_output); `eyrie serve --stdin`. */
  stdin: boolean;
}

/** One Falco gRPC server (Falco 0.24 to 0.43) that Eyrie dials as a client. */
export interface GrpcSourceConfig {
  /** `unix:///run/falco/falco.sock` (no auth), or `host:port` (Falco requires mutual TLS there). */
  address: string;
  /** `sub`: the bidirectional stream (default). `get`: drain Falco's queue, wait poll_interval, repeat. */
  method: 'sub' | 'get';
  /** Client certificate, key and CA for `host:port` addresses (falco-exporter --client-cert/-key/-ca). */
  tls: { ca_file: string; cert_file: string; key_file: string };
  /** Empty request after this much silence on `sub` (ms): Falco sends nothing more until it gets one. */
  keepalive_interval: number;
  /** Deadline of one connection attempt (ms; falco-exporter --timeout). */
  connect_timeout: number;
  /** Backoff between reconnections (ms), with jitter. */
  reconnect: { initial_interval: number; max_interval: number };
  /** `get` only: pause between drains (ms). */
  poll_interval: number;
}

/** A file Falco's file_output writes (one JSON alert per line), tailed across rotation. */
export interface FileSourceConfig {
  path: string;
  /** Where a file without a saved offset is read from. Default beginning. */
  start_at: 'beginning' | 'end';
  /** How often the file is checked for new lines and rotation (ms). */
  poll_interval: number;
}

/** falco-exporter's listeners: `falco_events` (and every other metric) on :9376, probes on :19376. */
export interface ExporterConfig {
  enabled: boolean;
  /** falco-exporter --listen-address. */
  address: string;
  port: number;
  /**
   * TLS for the metrics listener (falco-exporter --server-cert/--server-key/--server-ca): on when
   * cert_file is set; with client_ca_file, clients must present a certificate it signed.
   */
  tls: { cert_file: string; key_file: string; client_ca_file: string };
  /** falco-exporter --probes-listen-address: GET /liveness, GET /readiness (204 once a source is up). */
  probes: { enabled: boolean; address: string; port: number };
}

/** The journal and delivery engine (global). */
export interface DeliveryConfig {
  /**
   * Longest wait (ms) before a group commit of accepted events. Default 0: commit at the end of the
   * current event-loop turn, which groups every request read in that turn.
   */
  commit_interval: number;
  /** Commit at once when this many events are pending. Default 512. */
  commit_max_events: number;
  /** Refuse new events (503) when the database exceeds this many bytes; 0 = no cap. Default 10 GiB. */
  disk_cap: number;
  /** On SIGTERM, how long in-flight sends may take before exit (ms). Default 10 s. */
  shutdown_timeout: number;
}

export interface ListenConfig {
  /** The HTTP ingest listener; off for an `eyrie exporter` that only reads gRPC. Default true. */
  enabled: boolean;
  /** '' or '0.0.0.0' = all interfaces (Falcosidekick `listenaddress`). */
  address: string;
  /** Falcosidekick `listenport`, default 2801. */
  port: number;
  /** Largest accepted request body after gunzip, default 1 MiB. */
  body_limit: number;
  /** Idle keep-alive timeout; long, because Falco's libcurl reuses one connection. Default 75 s. */
  keep_alive_timeout: number;
  /**
   * How long the listeners keep accepting after SIGTERM before they close: Kubernetes routes to a
   * terminating pod until its endpoint removal reaches every node, and Falco drops what is refused.
   */
  shutdown_delay: number;
  tls: TlsServerConfig;
}

export interface TlsServerConfig {
  /** Falcosidekick `tlsserver.deploy`. */
  enabled: boolean;
  cert_file: string;
  key_file: string;
  /** CA that client certificates must chain to (Falcosidekick `tlsserver.cacertfile`). */
  client_ca_file: string;
  /** mTLS: refuse requests without a valid client certificate (Falcosidekick `tlsserver.mutualtls`). */
  require_client_cert: boolean;
  /** Plain-HTTP port for `plain_paths` when TLS is on (Falcosidekick `tlsserver.notlsport`, 2810). */
  plain_port: number;
  /** Paths served on `plain_port` instead of the TLS port (Falcosidekick `tlsserver.notlspaths`). */
  plain_paths: string[];
}

export interface IngestAuthConfig {
  /** Accepted bearer tokens; empty = no token needed. Secrets. */
  tokens: string[];
  /** Paths that never need a token or client certificate. Default /healthz, /ping, /metrics. */
  exempt_paths: string[];
}

export interface EnrichConfig {
  /** Falcosidekick `customfields`: merged into output_fields, overwriting. */
  custom_fields: Record<string, string>;
  /** Falcosidekick `customtags`: appended to tags. */
  custom_tags: string[];
  /** Falcosidekick `templatedfields`: Go-template subset over output_fields, stored as strings. */
  templated_fields: Record<string, string>;
  /** Falcosidekick `bracketreplacer`: '' = off. */
  bracket_replacer: string;
  /** Falcosidekick `outputFieldFormat`: '' = off. */
  output_field_format: string;
}

export interface MetricsConfig {
  /** Falcosidekick `prometheus.extralabels`: output fields added as labels. */
  extra_labels: string[];
  /**
   * Most label series of each per-event counter (pod names make them unbounded): past it, new series
   * are not created and the events are counted in eyrie_metrics_series_overflow_total. 0 = no cap.
   */
  max_series: number;
}

export interface LogConfig {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** json (production) or pretty (a terminal). */
  format: 'json' | 'pretty';
}

export interface StorageConfig {
  /** Data directory (journal, queues, store). Default ./data. */
  path: string;
}

/** A condition on one output field (any that are given must all hold). */
export interface FieldCondition {
  equals?: string | number | boolean | null;
  in?: (string | number | boolean | null)[];
  not_in?: (string | number | boolean | null)[];
  /** JavaScript regular expression source, matched against the field's string form. */
  regex?: string;
  /** true: the field is present and not null; false: absent or null. */
  exists?: boolean;
}

/** Which events a destination receives. Every given criterion must hold (AND). */
export interface DestinationFilterConfig {
  minimum_priority?: Priority;
  /** Rule names or globs (`*`, `?`); the event's rule must match one. */
  rules?: string[];
  /** Rule names or globs that are never delivered (checked after `rules`). */
  exclude_rules?: string[];
  sources?: string[];
  tags?: { any?: string[]; all?: string[]; none?: string[] };
  /** Hostnames or globs. */
  hostnames?: string[];
  /** Output field name → condition, e.g. `k8s.ns.name: { not_in: [kube-system] }`. */
  fields?: Record<string, FieldCondition>;
  /** A CEL expression over `event` (rule, priority, source, hostname, tags, output, output_fields, time). */
  cel?: string;
}

/** Drop identical events (same rule + chosen fields) seen within a window. */
export interface DedupConfig {
  /** Milliseconds. */
  window: number;
  /** Output fields that, with the rule, make two events identical. Empty = rule + output. */
  fields: string[];
}

/** Per-destination durable queue. */
export interface QueueConfig {
  /** Sends in flight at once for this destination. */
  concurrency: number;
  max_events: number;
  /** Bytes of queued event bodies. */
  max_bytes: number;
  when_full: 'drop_oldest' | 'drop_newest';
  /** How long a claimed entry stays invisible to other workers (ms). */
  lease: number;
}

export interface BatchConfig {
  max_events: number;
  max_bytes: number;
  /** Longest wait (ms) for a batch to fill before sending what there is. */
  timeout: number;
}

export interface RetryConfig {
  /** First backoff (ms). */
  initial_interval: number;
  max_interval: number;
  multiplier: number;
  /** Random spread of each backoff, 0–1 (0.2 = ±20 %). */
  jitter: number;
  /** 0 = unlimited attempts (bounded by max_elapsed_time). */
  max_attempts: number;
  /** Give up after this long since the first attempt (ms); 0 = unlimited. */
  max_elapsed_time: number;
  /** HTTP statuses retried in addition to / instead of the defaults (network errors, 408, 425, 429, 5xx but 501). */
  retryable_statuses?: number[];
  /** HTTP statuses sent straight to dead letters, overriding the defaults. */
  permanent_statuses?: number[];
}

/** Shared transport options of HTTP-based destinations. */
export interface RequestConfig {
  /** Whole-request timeout (ms). */
  timeout: number;
  connect_timeout: number;
  headers: Record<string, string>;
  tls: {
    /** Verify the server certificate (Falcosidekick `checkcert`). */
    verify: boolean;
    /** CA certificates trusted besides Node's roots: a PEM file, or several. */
    ca_file: string | string[];
    /** Client certificate for mutual TLS (Falcosidekick `mutualtls` + `mutualtlsclient`). */
    cert_file: string;
    key_file: string;
  };
  /** Proxy URL; '' = from HTTP(S)_PROXY / NO_PROXY. */
  proxy: string;
  auth: { username: string; password: string; bearer_token: string };
  /** gzip request bodies. */
  gzip: boolean;
}

/** One entry of the named destination list; type-specific options sit beside the common keys. */
export interface DestinationConfig {
  name: string;
  type: string;
  filter: DestinationFilterConfig;
  /** `disk` (default): journaled, survives crashes. `memory`: for noisy low-value sinks. */
  durability: 'disk' | 'memory';
  queue: QueueConfig;
  /** The type's default batch policy, overridable; max_events 1 for types that do not batch. */
  batch: BatchConfig;
  retry: RetryConfig;
  request: RequestConfig;
  /** Name of the destination that takes events this one gives up on (instead of dead letters). */
  fallback?: string;
  dedup?: DedupConfig;
  /** Type-specific options, validated by the type's own schema. */
  options: Record<string, unknown>;
}
