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
  destinations: DestinationConfig[];
}

export interface ListenConfig {
  /** '' or '0.0.0.0' = all interfaces (Falcosidekick `listenaddress`). */
  address: string;
  /** Falcosidekick `listenport`, default 2801. */
  port: number;
  /** Largest accepted request body after gunzip, default 1 MiB. */
  body_limit: number;
  /** Idle keep-alive timeout; long, because Falco's libcurl reuses one connection. Default 75 s. */
  keep_alive_timeout: number;
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

export interface DestinationFilterConfig {
  minimum_priority?: Priority;
}

/** One entry of the named destination list; type-specific options sit beside the common keys. */
export interface DestinationConfig {
  name: string;
  type: string;
  filter: DestinationFilterConfig;
  /** Type-specific options, validated by the type's own schema. */
  options: Record<string, unknown>;
}
