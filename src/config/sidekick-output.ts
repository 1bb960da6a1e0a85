import type { DestinationType, SidekickMapping } from '../destinations/types.ts';
import { coerceText } from './coerce.ts';
import { mapValueSchema, propertiesOf, schemaAt } from './json-schema.ts';
import type { JsonSchema } from './json-schema.ts';
import type { Issues, Path } from './origins.ts';
import { getAt, isPlainObject, setAt } from './plain.ts';
import { COMMON_DESTINATION_KEYS, destinationCommonSchema } from './schema.ts';
import { parsePairs } from './sidekick-env.ts';
import { isEnabling } from './sidekick-outputs.ts';
import { didYouMean } from './suggest.ts';

const commonSchema = destinationCommonSchema as unknown as JsonSchema;

/** `requestKeys` values that are instructions rather than paths into `request` (see SidekickMapping). */
const MUTUAL_TLS = 'mutual_tls';
const QUEUE_CONCURRENCY = 'queue.concurrency';
/** Falcosidekick's `maxconcurrentrequests: 0` means unlimited; Eyrie bounds everything. */
const UNLIMITED_CONCURRENCY = 64;

export interface OutputContext {
  /** The whole (lower-cased) Falcosidekick tree, for the global client TLS settings. */
  tree: Record<string, unknown>;
  issues: Issues;
  warnings: string[];
}

export interface TranslatedOutput {
  /** A raw native destination entry. */
  entry: Record<string, unknown>;
  /** Whether it took the global mutualtlsclient certificate. */
  usesMutualTls: boolean;
  /** Whether it is HTTP-based (has request keys), so took tlsclient.cacertfile. */
  isHttp: boolean;
}

const isScalar = (v: unknown): v is string | number | boolean =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

/**
 * Translates one Falcosidekick output section (e.g. `webhook`, `aws.sqs`) for a destination type that
 * declares a SidekickMapping. Unknown keys are reported whether or not the output is enabled, since a
 * misspelt enabling key is exactly what would silently disable it. Returns undefined when disabled.
 * The entry becomes `destinations[index]`; origins are recorded under that path.
 */
export function translateOutput(
  path: string[],
  type: DestinationType<never>,
  mapping: SidekickMapping,
  index: number,
  context: OutputContext,
): TranslatedOutput | undefined {
  const { issues } = context;
  const node = getAt(context.tree, path);
  if (node === undefined || node === null) return undefined;
  if (!isPlainObject(node)) {
    issues.atValue(path, 'must be a section of keys');
    return undefined;
  }
  const section = path.join('.');
  const lower = (record: Record<string, string> | undefined) =>
    new Map(Object.entries(record ?? {}).map(([k, target]) => [k.toLowerCase(), target]));
  const optionOf = lower(mapping.keys);
  const requestOf = lower(mapping.requestKeys);
  const known = [...optionOf.keys(), ...requestOf.keys(), 'minimumpriority'];
  const entry: Record<string, unknown> = { name: section, type: type.type, filter: {} };
  const destinationPath = ['destinations', index];
  // Origins are only recorded for an enabled output: a disabled one must not leave labels behind
  // at the index the next output will take.
  const enabled = isEnabling(node[mapping.enabledBy.toLowerCase()]);
  const place = (from: Path, target: string[], value: unknown): void => {
    setAt(entry, target, value);
    if (enabled) issues.origins.copy(from, [...destinationPath, ...target]);
  };
  let mutualTls = false;

  for (const [key, value] of Object.entries(node)) {
    // `method:` with nothing after it (a section uncommented from config_example.yaml): viper reads
    // a null as unset, so the default applies.
    if (value === null) continue;
    const from = [...path, key];
    const base = key.endsWith('_file') ? key.slice(0, -'_file'.length) : key;
    const option = optionOf.get(base);
    const request = requestOf.get(key);
    if (key === 'minimumpriority') {
      if (value === '' || value === null) continue;
      place(from, ['filter', 'minimum_priority'], isScalar(value) ? String(value) : value);
      if (enabled && typeof value === 'string' && value.trim().toLowerCase() === 'info') {
        context.warnings.push(
          `falcosidekick: ${section}.minimumpriority "info" means informational here; Falcosidekick read it as "all priorities"`,
        );
      }
    } else if (option !== undefined) {
      // Options may also name a common setting by its dotted path; `X_file` stays a file reference.
      const target = option.split('.');
      if (key !== base) target.push(`${target.pop()!}_file`);
      const schema = key === base ? targetSchema(type, target) : undefined;
      place(from, target, schema ? lenient(value, schema, from, issues) : value);
    } else if (request === MUTUAL_TLS) {
      const on = typeof value === 'string' ? coerceText(value, { type: 'boolean' }) : value;
      if (typeof on !== 'boolean') issues.atValue(from, 'must be true or false');
      else if (on && enabled) {
        mutualTls = true;
        applyMutualTls(entry, from, destinationPath, context);
      }
    } else if (request !== undefined) {
      const target =
        request === QUEUE_CONCURRENCY ? ['queue', 'concurrency'] : ['request', ...request.split('.')];
      let converted = lenient(value, schemaAt(commonSchema, target) ?? {}, from, issues);
      if (enabled && request === QUEUE_CONCURRENCY && converted === 0) {
        converted = UNLIMITED_CONCURRENCY;
        context.warnings.push(
          `falcosidekick: ${section}.maxconcurrentrequests 0 (unlimited) → queue.concurrency ${UNLIMITED_CONCURRENCY}`,
        );
      }
      place(from, target, converted);
    } else {
      issues.atKey(
        from,
        `"${key}" is not supported for Falcosidekick output "${section}"${didYouMean(key, known)} (supported: ${known.join(', ')})`,
      );
    }
  }
  if (!enabled) return undefined;
  const isHttp = mapping.requestKeys !== undefined;
  // Falcosidekick sends one request at a time per HTTP output unless maxconcurrentrequests says
  // otherwise (defaultMaxConcurrentHttpRequests = 1): a receiver sized for that, and event order, rely on it.
  if (isHttp && getAt(entry, ['queue', 'concurrency']) === undefined)
    setAt(entry, ['queue', 'concurrency'], 1);
  if (isHttp) applyClientCa(entry, destinationPath, context);
  // Falcosidekick verifies the server whenever it presents a client certificate, whatever checkcert says.
  if (mutualTls) setAt(entry, ['request', 'tls', 'verify'], true);
  issues.origins.copyOne(path, destinationPath);
  return { entry, usesMutualTls: mutualTls, isHttp };
}

function targetSchema(type: DestinationType<never>, target: string[]): JsonSchema | undefined {
  const common = COMMON_DESTINATION_KEYS.includes(target[0]!);
  return schemaAt(common ? commonSchema : (type.optionsSchema as unknown as JsonSchema), target);
}

/** Viper-style leniency: `"true"` for a boolean, `"2"` for a number, `k:v,k2:v2` for a map. */
function lenient(value: unknown, schema: JsonSchema, path: Path, issues: Issues): unknown {
  if (typeof value !== 'string') return value;
  if (!propertiesOf(schema) && mapValueSchema(schema) && schema.type === 'object') {
    return Object.fromEntries(parsePairs(value, (message) => issues.atValue(path, message)));
  }
  return coerceText(value, schema);
}

/** The global client certificate: mutualtlsclient.*, else files under mutualtlsfilespath. */
function applyMutualTls(
  entry: Record<string, unknown>,
  from: Path,
  destinationPath: Path,
  context: OutputContext,
): void {
  const setting = (key: string): string => {
    const value = getAt(context.tree, ['mutualtlsclient', key]);
    return typeof value === 'string' ? value : '';
  };
  const folderValue = getAt(context.tree, ['mutualtlsfilespath']);
  const folder = typeof folderValue === 'string' && folderValue !== '' ? folderValue : '/etc/certs';
  const files: [string, string, string][] = [
    ['cert_file', 'certfile', `${folder}/client.crt`],
    ['key_file', 'keyfile', `${folder}/client.key`],
    ['ca_file', 'cacertfile', `${folder}/ca.crt`],
  ];
  for (const [target, key, fallback] of files) {
    const configured = setting(key);
    setAt(entry, ['request', 'tls', target], configured || fallback);
    const origin = configured
      ? ['mutualtlsclient', key]
      : folderValue === undefined
        ? from
        : ['mutualtlsfilespath'];
    context.issues.origins.copyOne(origin, [...destinationPath, 'request', 'tls', target]);
  }
}

/**
 * tlsclient.cacertfile is trusted by every HTTP output; with mutualtls, besides mutualtlsclient's CA
 * (Falcosidekick appends both to the root pool).
 */
function applyClientCa(entry: Record<string, unknown>, destinationPath: Path, context: OutputContext): void {
  const ca = getAt(context.tree, ['tlsclient', 'cacertfile']);
  if (typeof ca !== 'string' || ca === '') return;
  const target = [...destinationPath, 'request', 'tls', 'ca_file'];
  const mutualCa = getAt(entry, ['request', 'tls', 'ca_file']);
  if (typeof mutualCa === 'string' && mutualCa !== '') {
    setAt(entry, ['request', 'tls', 'ca_file'], [ca, mutualCa]);
    context.issues.origins.copyOne(target, [...target, 1]);
    context.issues.origins.copyOne(['tlsclient', 'cacertfile'], [...target, 0]);
    return;
  }
  setAt(entry, ['request', 'tls', 'ca_file'], ca);
  context.issues.origins.copyOne(['tlsclient', 'cacertfile'], target);
}
