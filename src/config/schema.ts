import { Type } from 'typebox';
import type { TSchema } from 'typebox';

/**
 * JSON Schema of the native YAML, before sizes and durations are converted and priorities named
 * (see resolve.ts). Two annotations of our own: `expect` is how an error message describes a valid
 * value, and `unit` marks a size or duration (an integer, or a string such as "1MiB" or "75s").
 */

/** 0 asks the OS for a free port: tests and ad-hoc runs need it (Falcosidekick files may not use it). */
const port = (fallback: number): TSchema =>
  Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: fallback,
    expect: 'an integer 1-65535 (or 0 for any free port)',
  });

const SIZE_EXPECT = 'a size: bytes, or a string like "512KiB", "1MiB" or "10MB"';
const DURATION_EXPECT = 'a duration: milliseconds, or a string like "500ms", "75s", "1m30s" or "24h"';

/** A size in bytes; `fallback` undefined = no default (optional, or computed in resolve.ts). */
const size = (fallback?: number, minimum = 0): TSchema =>
  // The minimum is checked with the units (units-walk.ts), so that `0` reads "must be at least 1".
  Type.Union([Type.Integer({ minimum: 0 }), Type.String()], {
    ...(fallback === undefined ? {} : { default: fallback }),
    expect: SIZE_EXPECT,
    unit: 'size',
    unitMinimum: minimum,
  });

/** A duration in milliseconds. */
const duration = (fallback?: number, minimum = 0): TSchema =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String()], {
    ...(fallback === undefined ? {} : { default: fallback }),
    expect: DURATION_EXPECT,
    unit: 'duration',
    unitMinimum: minimum,
  });

/** For destination types' options: the same units, converted by the same walk (resolve.ts). */
export { size as sizeSchema, duration as durationSchema };

const integer = (fallback: number, minimum = 0, maximum?: number): TSchema =>
  Type.Integer({ minimum, ...(maximum === undefined ? {} : { maximum }), default: fallback });
const strings = (fallback?: string[]): TSchema =>
  Type.Array(Type.String(), fallback === undefined ? {} : { default: fallback });
const stringMap = (): TSchema => Type.Record(Type.String(), Type.String(), { default: {} });
/**
 * HTTP headers: names that are tokens (RFC 9110) and values on one line. undici refuses any other at
 * every send, which would otherwise show only as retries until the budget runs out.
 */
export const headerMap = (): TSchema =>
  Type.Record(
    Type.String(),
    Type.String({
      pattern: '^[\\t\\x20-\\x7e\\x80-\\xff]*$',
      expect: 'a header value on one line: Latin-1 characters, no control characters',
    }),
    {
      default: {},
      propertyNames: {
        pattern: "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$",
        expect: "a header name: letters, digits and !#$%&'*+-.^_`|~",
      },
    },
  );
const section = (properties: Record<string, TSchema>): TSchema =>
  Type.Object(properties, { additionalProperties: false, default: {} });
const optionalSection = (properties: Record<string, TSchema>): TSchema =>
  Type.Optional(Type.Object(properties, { additionalProperties: false }));
const oneOf = (values: string[], fallback?: string): TSchema =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    fallback === undefined ? {} : { default: fallback },
  );

const MiB = 1024 * 1024;
/** The most sends in flight per destination. */
export const MAX_CONCURRENCY = 1000;
const SECOND = 1000;

export const DESTINATION_NAME = /^[a-z0-9][a-z0-9_.-]*$/;

const fieldValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
const httpStatuses = Type.Optional(
  Type.Array(Type.Integer({ minimum: 100, maximum: 599, expect: 'an HTTP status 100-599' })),
);

/**
 * Names a filter requires: an empty one (an unset `${VAR:-}`) would match no event, silently. An
 * empty name in an exclusion (`exclude_rules`, `tags.none`) excludes nothing, which is harmless.
 */
const names = (): TSchema =>
  Type.Optional(Type.Array(Type.String({ minLength: 1, expect: 'a non-empty string' })));

const filterSchema = Type.Object(
  {
    minimum_priority: Type.Optional(Type.String()),
    rules: names(),
    exclude_rules: Type.Optional(strings()),
    sources: names(),
    tags: optionalSection({ any: names(), all: names(), none: Type.Optional(strings()) }),
    hostnames: names(),
    fields: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Object(
          {
            equals: Type.Optional(fieldValue),
            in: Type.Optional(Type.Array(fieldValue)),
            not_in: Type.Optional(Type.Array(fieldValue)),
            regex: Type.Optional(Type.String()),
            exists: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    cel: Type.Optional(Type.String()),
  },
  { additionalProperties: false, default: {} },
);

/** The keys every destination has; everything else in its entry is a type-specific option. */
export const destinationCommonSchema = Type.Object(
  {
    name: Type.String({
      pattern: DESTINATION_NAME.source,
      expect: 'a name of lower-case letters, digits, "_", "." and "-", starting with a letter or digit',
    }),
    type: Type.String(),
    filter: filterSchema,
    durability: oneOf(['disk', 'memory'], 'disk'),
    queue: section({
      // Each unit is a worker loop with its own prefetched entries: a billion would exhaust memory.
      concurrency: integer(4, 1, MAX_CONCURRENCY),
      max_events: integer(100_000, 1),
      max_bytes: size(256 * MiB),
      when_full: oneOf(['drop_oldest', 'drop_newest'], 'drop_oldest'),
      // Default computed from request.timeout (resolve.ts): a lease must outlast a send.
      lease: Type.Optional(duration(undefined, 1)),
    }),
    // Defaults come from the type's own batch policy (resolve.ts).
    batch: optionalSection({
      max_events: Type.Optional(Type.Integer({ minimum: 1 })),
      max_bytes: Type.Optional(size()),
      timeout: Type.Optional(duration()),
    }),
    retry: section({
      initial_interval: duration(1 * SECOND, 1),
      max_interval: duration(60 * SECOND, 1),
      multiplier: Type.Number({ minimum: 1, default: 2 }),
      jitter: Type.Number({ minimum: 0, maximum: 1, default: 0.5 }),
      max_attempts: integer(0),
      max_elapsed_time: duration(24 * 3600 * SECOND),
      retryable_statuses: httpStatuses,
      permanent_statuses: httpStatuses,
    }),
    request: section({
      timeout: duration(30 * SECOND, 1),
      connect_timeout: duration(10 * SECOND, 1),
      headers: headerMap(),
      tls: section({
        verify: Type.Boolean({ default: true }),
        // One file or several (Falcosidekick trusts tlsclient's CA and mutualtlsclient's together).
        ca_file: Type.Union([Type.String(), Type.Array(Type.String())], { default: '' }),
        cert_file: Type.String({ default: '' }),
        key_file: Type.String({ default: '' }),
      }),
      proxy: Type.String({ default: '' }),
      auth: section({
        username: Type.String({ default: '' }),
        password: Type.String({ default: '' }),
        bearer_token: Type.String({ default: '' }),
      }),
      gzip: Type.Boolean({ default: false }),
    }),
    fallback: Type.Optional(Type.String()),
    dedup: optionalSection({ window: duration(undefined, 1), fields: strings([]) }),
  },
  // Options are checked per type, against the type's own schema.
  { additionalProperties: true },
);

export const COMMON_DESTINATION_KEYS: readonly string[] = Object.keys(
  (destinationCommonSchema as unknown as { properties: Record<string, unknown> }).properties,
);

export const nativeSchema = Type.Object(
  {
    listen: section({
      address: Type.String({ default: '' }),
      port: port(2801),
      body_limit: size(MiB, 1),
      keep_alive_timeout: duration(75 * SECOND),
      shutdown_delay: duration(0),
      tls: section({
        enabled: Type.Boolean({ default: false }),
        cert_file: Type.String({ default: '/etc/certs/server/server.crt' }),
        key_file: Type.String({ default: '/etc/certs/server/server.key' }),
        client_ca_file: Type.String({ default: '/etc/certs/server/ca.crt' }),
        require_client_cert: Type.Boolean({ default: false }),
        plain_port: port(2810),
        plain_paths: strings([]),
      }),
      enabled: Type.Boolean({ default: true }),
    }),
    auth: section({
      // An empty token (say from "${T:-}") would lock every sender out: refuse it.
      tokens: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
      exempt_paths: strings(['/healthz', '/ping', '/metrics']),
    }),
    enrich: section({
      custom_fields: stringMap(),
      custom_tags: strings([]),
      templated_fields: stringMap(),
      bracket_replacer: Type.String({ default: '' }),
      output_field_format: Type.String({ default: '' }),
    }),
    metrics: section({
      extra_labels: strings([]),
      max_series: Type.Integer({ minimum: 0, default: 10_000 }),
    }),
    log: section({
      level: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], 'info'),
      format: oneOf(['json', 'pretty'], 'json'),
    }),
    storage: section({ path: Type.String({ default: './data' }) }),
    delivery: section({
      commit_interval: duration(0),
      commit_max_events: integer(512, 1),
      disk_cap: size(10 * 1024 * MiB),
      shutdown_timeout: duration(10 * SECOND),
    }),
    destinations: Type.Array(destinationCommonSchema, { default: [] }),
    sources: section({
      grpc: Type.Array(
        Type.Object(
          {
            address: Type.String({ minLength: 1, default: 'unix:///run/falco/falco.sock' }),
            method: oneOf(['sub', 'get'], 'sub'),
            tls: section({
              ca_file: Type.String({ default: '/etc/falco/certs/ca.crt' }),
              cert_file: Type.String({ default: '/etc/falco/certs/client.crt' }),
              key_file: Type.String({ default: '/etc/falco/certs/client.key' }),
            }),
            keepalive_interval: duration(SECOND, 1),
            connect_timeout: duration(120 * SECOND, 1),
            reconnect: section({
              initial_interval: duration(SECOND, 1),
              max_interval: duration(30 * SECOND, 1),
            }),
            poll_interval: duration(SECOND, 1),
          },
          { additionalProperties: false },
        ),
        { default: [] },
      ),
      files: Type.Array(
        Type.Object(
          {
            path: Type.String({ minLength: 1 }),
            start_at: oneOf(['beginning', 'end'], 'beginning'),
            poll_interval: duration(SECOND / 4, 1),
          },
          { additionalProperties: false },
        ),
        { default: [] },
      ),
      stdin: Type.Boolean({ default: false }),
    }),
    exporter: section({
      enabled: Type.Boolean({ default: false }),
      address: Type.String({ default: '' }),
      port: port(9376),
      tls: section({
        cert_file: Type.String({ default: '' }),
        key_file: Type.String({ default: '' }),
        client_ca_file: Type.String({ default: '' }),
      }),
      probes: section({
        enabled: Type.Boolean({ default: true }),
        address: Type.String({ default: '' }),
        port: port(19376),
      }),
    }),
  },
  { additionalProperties: false },
);

export const NATIVE_SECTIONS: readonly string[] = Object.keys(
  (nativeSchema as unknown as { properties: Record<string, unknown> }).properties,
);
