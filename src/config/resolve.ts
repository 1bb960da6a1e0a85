import { resolve as resolvePath } from 'node:path';
import { SEND_DEADLINE_MARGIN_MS, type DestinationType } from '../destinations/types.ts';
import type {
  BatchConfig,
  DestinationConfig,
  DestinationFilterConfig,
  EyrieConfig,
  QueueConfig,
} from './types.ts';
import type { DestinationTypes } from './destination-entry.ts';
import { splitEntry } from './destination-entry.ts';
import { envNameOf } from './env-overrides.ts';
import { propertiesOf } from './json-schema.ts';
import type { JsonSchema } from './json-schema.ts';
import type { Issues, Path } from './origins.ts';
import { isPlainObject } from './plain.ts';
import { checkMinimumPriority } from './priority-name.ts';
import { COMMON_DESTINATION_KEYS, nativeSchema } from './schema.ts';
import { didYouMean } from './suggest.ts';
import { formatDuration } from './units.ts';
import { convertUnits } from './units-walk.ts';
import { validateInto } from './validate.ts';

type Raw = Record<string, unknown>;

const asRecord = (value: unknown): Raw => (isPlainObject(value) ? value : {});

/** A type without its own batch policy gets one event per send. */
const SINGLE_EVENT_BATCH: BatchConfig = { max_events: 1, max_bytes: 0, timeout: 0 };

/**
 * Turns the schema-checked raw tree (defaults filled in) into EyrieConfig: sizes and durations become
 * numbers, priorities Falco's names, destination options are checked against their type, and the
 * checks that span several keys run. Runs even when validation found problems, so that all of them are
 * reported at once; the result is only used when `issues` stays empty.
 */
export function buildConfig(raw: Raw, types: DestinationTypes, issues: Issues): EyrieConfig {
  convertUnits(raw, nativeSchema as unknown as JsonSchema, [], issues);
  // Validation filled every default; a section of the wrong type was reported and is read as {}.
  const section = (name: keyof EyrieConfig): never => asRecord(raw[name]) as never;
  const listen = asRecord(raw.listen) as unknown as EyrieConfig['listen'];
  if (isPlainObject(listen.tls) && listen.tls.require_client_cert && !listen.tls.enabled) {
    issues.atValue(
      ['listen', 'tls', 'require_client_cert'],
      'has no effect without TLS; also set listen.tls.enabled: true (Falcosidekick: tlsserver.deploy)',
    );
  }
  const destinations = buildDestinations(raw.destinations, types, issues);
  checkFallbacks(destinations, issues);
  checkSharedFiles(destinations, issues);
  return {
    listen,
    auth: section('auth'),
    enrich: section('enrich'),
    metrics: section('metrics'),
    log: section('log'),
    storage: section('storage'),
    delivery: section('delivery'),
    destinations,
    sources: section('sources'),
    exporter: section('exporter'),
  };
}

function buildDestinations(list: unknown, types: DestinationTypes, issues: Issues): DestinationConfig[] {
  if (!Array.isArray(list)) return [];
  const firstByName = new Map<string, { name: string; index: number }>();
  const out: DestinationConfig[] = [];
  list.forEach((entry: unknown, index) => {
    if (!isPlainObject(entry)) return;
    const { common, options } = splitEntry(entry);
    const at = (...rest: (string | number)[]): Path => ['destinations', index, ...rest];
    const name = typeof common.name === 'string' ? common.name : '';
    checkUniqueName(name, index, firstByName, issues);
    const typeName = typeof common.type === 'string' ? common.type : '';
    const type = types.get(typeName);
    if (!type && typeof common.type === 'string') {
      const known = [...types.keys()];
      issues.atValue(
        at('type'),
        `unknown destination type "${typeName}"${didYouMean(typeName, known)} (known types: ${known.join(', ')})`,
      );
    }
    if (type) checkOptions(type, options, at(), issues);
    // Sections of the wrong type were reported by validation; {} keeps the checks below from throwing.
    const request = asRecord(common.request) as unknown as DestinationConfig['request'];
    const retry = asRecord(common.retry) as unknown as DestinationConfig['retry'];
    if (retry.max_interval < retry.initial_interval) {
      issues.atValue(
        at('retry', 'max_interval'),
        `must not be shorter than retry.initial_interval (${formatDuration(retry.initial_interval)})`,
      );
    }
    const destination: DestinationConfig = {
      name,
      type: typeName,
      filter: buildFilter(common.filter, at('filter'), issues),
      durability: common.durability as DestinationConfig['durability'],
      queue: buildQueue(
        asRecord(common.queue) as unknown as QueueConfig,
        request,
        at('queue', 'lease'),
        issues,
      ),
      batch: buildBatch(type, common.batch, at('batch'), issues),
      retry,
      request,
      options,
    };
    if (typeof common.fallback === 'string') destination.fallback = common.fallback;
    if (isPlainObject(common.dedup))
      destination.dedup = common.dedup as unknown as NonNullable<DestinationConfig['dedup']>;
    out.push(destination);
  });
  return out;
}

function checkOptions(type: DestinationType<never>, options: Raw, path: Path, issues: Issues): void {
  const schema = type.optionsSchema as unknown as JsonSchema;
  const known = [...Object.keys(propertiesOf(schema) ?? {}), ...COMMON_DESTINATION_KEYS];
  validateInto(schema, options, path, issues, {
    unknownKey: (key) =>
      `unknown option "${key}" for destination type "${type.type}"${didYouMean(key, known)} (options: ${known.join(', ')})`,
  });
  convertUnits(options, schema, path, issues);
}

function buildFilter(raw: unknown, path: Path, issues: Issues): DestinationFilterConfig {
  const filter: Raw = { ...asRecord(raw) };
  const priority = checkMinimumPriority(filter.minimum_priority);
  if (!priority.ok) issues.atValue([...path, 'minimum_priority'], priority.message);
  if (priority.ok && priority.priority !== undefined) filter.minimum_priority = priority.priority;
  else Reflect.deleteProperty(filter, 'minimum_priority');
  for (const [field, condition] of Object.entries(isPlainObject(filter.fields) ? filter.fields : {})) {
    const regex = isPlainObject(condition) ? condition.regex : undefined;
    if (typeof regex !== 'string') continue;
    try {
      new RegExp(regex);
    } catch (error) {
      issues.atValue(
        [...path, 'fields', field, 'regex'],
        `is not a valid regular expression: ${(error as Error).message}`,
      );
    }
  }
  return filter;
}

/** A lease must outlast a send, or a second worker would claim (and send) the same events meanwhile. */
function buildQueue(
  queue: QueueConfig,
  request: DestinationConfig['request'],
  leasePath: Path,
  issues: Issues,
): QueueConfig {
  const shortest = request.timeout + SEND_DEADLINE_MARGIN_MS;
  if (typeof queue.lease !== 'number') return { ...queue, lease: Math.max(60_000, request.timeout + 30_000) };
  if (queue.lease <= shortest) {
    issues.atValue(
      leasePath,
      `must be longer than request.timeout + 5s (${formatDuration(shortest)}), or sends would be repeated`,
    );
  }
  return queue;
}

function buildBatch(
  type: DestinationType<never> | undefined,
  raw: unknown,
  path: Path,
  issues: Issues,
): BatchConfig {
  const given = asRecord(raw) as Partial<BatchConfig>;
  if (type && !type.batch && given.max_events !== undefined && given.max_events !== 1) {
    issues.atValue(
      [...path, 'max_events'],
      `must be 1: destination type "${type.type}" sends one event at a time`,
    );
  }
  return { ...(type?.batch ?? SINGLE_EVENT_BATCH), ...given };
}

/** Names are unique, also as env vars see them (`my-hook` and `my_hook` would be the same variable). */
function checkUniqueName(
  name: string,
  index: number,
  firstByName: Map<string, { name: string; index: number }>,
  issues: Issues,
): void {
  if (name === '') return;
  const first = firstByName.get(envNameOf(name));
  if (!first) {
    firstByName.set(envNameOf(name), { name, index });
    return;
  }
  const where = issues.origins.value(['destinations', first.index, 'name']);
  const at = where?.line !== undefined ? ` (first at line ${where.line})` : '';
  const message =
    first.name === name
      ? `duplicate destination name "${name}"${at}`
      : `destination name "${name}" clashes with "${first.name}"${at}: env overrides read "-", "." and "_" alike`;
  issues.atValue(['destinations', index, 'name'], message);
}

/**
 * Two `file` destinations never append to the same file: each rotates it and cuts off what it takes for
 * a partial line on its own, so they would rename each other's rotated files over one another and
 * truncate each other's lines (events lost, a line cut in two). Paths are compared as `create()` opens
 * them, resolved against the working directory.
 */
function checkSharedFiles(destinations: DestinationConfig[], issues: Issues): void {
  const firstByPath = new Map<string, number>();
  destinations.forEach((destination, index) => {
    const path = destination.options.path;
    if (destination.type !== 'file' || typeof path !== 'string' || path === '') return;
    const absolute = resolvePath(path);
    const first = firstByPath.get(absolute);
    if (first === undefined) {
      firstByPath.set(absolute, index);
      return;
    }
    issues.atValue(
      ['destinations', index, 'path'],
      `${absolute} is already the file of destination "${destinations[first]!.name}": give each file destination its own path (one destination with a wider filter can take both kinds of events)`,
    );
  });
}

/** A fallback names another destination, and fallbacks never lead back (events would circle forever). */
function checkFallbacks(destinations: DestinationConfig[], issues: Issues): void {
  const byName = new Map(destinations.map((d, i) => [d.name, i]));
  destinations.forEach((destination, index) => {
    if (destination.fallback === undefined) return;
    const path = ['destinations', index, 'fallback'];
    if (!byName.has(destination.fallback)) {
      issues.atValue(
        path,
        `no destination named "${destination.fallback}"${didYouMean(destination.fallback, byName.keys())}`,
      );
      return;
    }
    const chain = [destination.name];
    for (let next: string | undefined = destination.fallback; next !== undefined;) {
      if (next === destination.name) {
        issues.atValue(path, `fallbacks form a loop: ${[...chain, next].join(' → ')}`);
        return;
      }
      if (chain.includes(next)) return; // a loop further on, reported at its own members
      chain.push(next);
      const i = byName.get(next);
      next = i === undefined ? undefined : destinations[i]!.fallback;
    }
  });
}
