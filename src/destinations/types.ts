import type { TSchema } from 'typebox';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { Logger } from 'pino';
import type { BatchConfig, RequestConfig } from '../config/types.ts';

/** What a destination type's sender gets at start. */
export interface DestinationContext {
  name: string;
  logger: Logger;
  /** Resolved shared transport options (timeouts, TLS, proxy, auth, headers) for HTTP-based types. */
  request: RequestConfig;
  /** Eyrie's data directory, for types that keep local state. */
  dataDir: string;
  /** The destination's resolved batch policy (absent in tests that build a sender alone). */
  batch?: BatchConfig;
}

/**
 * How long a send may run past `request.timeout` before the delivery worker abandons it and retries its
 * events (a destination that sends in several requests, such as a split batch, must settle within it).
 */
export const SEND_DEADLINE_MARGIN_MS = 5000;

/** A running destination instance. */
export interface Destination {
  readonly name: string;
  readonly type: string;
  /**
   * Delivers events (one, or a batch when the type batches). Resolves on success; throws on failure:
   * HttpStatusError, PermanentError or RetryableError from src/delivery/errors.ts, or any network error
   * (the delivery engine classifies, retries, dead-letters).
   */
  send(events: readonly FalcoEvent[]): Promise<void>;
  close(): Promise<void>;
}

/** How a Falcosidekick config section maps onto this type (see src/config/sidekick.ts). */
export interface SidekickMapping {
  /** Section path in Falcosidekick's YAML, e.g. `webhook` or `aws.sqs`. */
  section: string;
  /** Key under the section whose non-empty value enables the output, e.g. `address`. */
  enabledBy: string;
  /** Section keys (lower-case, as viper sees them) → native option names. Unlisted keys are errors. */
  keys: Record<string, string>;
  /**
   * Section keys that set the destination's shared transport options (`request`, a RequestConfig)
   * rather than type options: key → dotted RequestConfig path, e.g. `checkcert` → `tls.verify`.
   * Two values are not paths but instructions for the loader:
   * - `mutual_tls`: when true, set `tls.cert_file`/`tls.key_file` from Falcosidekick's global
   *   `mutualtlsclient.certfile`/`keyfile` (default `<mutualtlsfilespath>/client.crt|client.key`) and
   *   add `mutualtlsclient.cacertfile` (default `<mutualtlsfilespath>/ca.crt`) as `tls.ca_file`;
   *   Falcosidekick then ignores `checkcert` (verification stays on).
   * - `queue.concurrency`: a path into the destination entry (not `request`), for
   *   `maxconcurrentrequests` (Falcosidekick's per-output in-flight limit; 0 = unlimited).
   * Global `tlsclient.cacertfile` applies to every HTTP destination as `tls.ca_file`.
   */
  requestKeys?: Record<string, string>;
}

/** One module per destination type implements this. */
export interface DestinationType<Options = Record<string, unknown>> {
  readonly type: string;
  /** Schema of the type-specific options (typebox), with defaults. */
  readonly optionsSchema: TSchema;
  /** Option names that hold secrets (masked by `eyrie check`, redacted in logs). */
  readonly secretOptions: readonly string[];
  readonly sidekick?: SidekickMapping;
  /** Default batch policy for types that send several events per request; absent = one event per send. */
  readonly batch?: BatchConfig;
  /**
   * Refuses options that create() would refuse, without creating anything (`eyrie check`). A type
   * whose create() has no side effects (it opens no file, no connection) omits it: check builds
   * and closes the destination instead.
   */
  check?(options: Options, context: DestinationContext): void;
  create(options: Options, context: DestinationContext): Destination;
}
