import { coerceText } from './coerce.ts';
import { entrySchema, typeOfEntry } from './destination-entry.ts';
import type { DestinationTypes } from './destination-entry.ts';
import { findProperty, itemsOf, mapValueSchema, propertiesOf } from './json-schema.ts';
import type { JsonSchema } from './json-schema.ts';
import type { Issues, PathSegment } from './origins.ts';
import { isPlainObject, removeKey } from './plain.ts';
import { nativeSchema } from './schema.ts';
import { closest } from './suggest.ts';

export const ENV_PREFIX = 'EYRIE_';
/** EYRIE_ variables that are not settings (read by the CLI), so not reported as unknown. */
export const NON_SETTING_ENV: ReadonlySet<string> = new Set(['EYRIE_CONFIG', 'EYRIE_TOKEN']);

/**
 * Kubernetes' service links: for every Service in the namespace each pod gets `<NAME>_SERVICE_HOST`,
 * `<NAME>_SERVICE_PORT[_<PORT NAME>]`, `<NAME>_PORT` and `<NAME>_PORT_<N>_<PROTO>[_ADDR|_PORT|_PROTO]`,
 * so a Service called `eyrie` or `eyrie-falcosidekick` puts EYRIE_ variables in the environment.
 * They are not settings (settings separate keys with `__`) and must not stop Eyrie from starting.
 * Recognised by name and value together, so that a mistyped setting (`EYRIE_LISTEN_PORT=2802`) is
 * still reported.
 */
const SERVICE_LINKS: [name: RegExp, value: RegExp][] = [
  [/_SERVICE_HOST$|_PORT_\d+_(TCP|UDP|SCTP)_ADDR$/, /^[0-9A-Fa-f:.]+$/],
  [/_SERVICE_PORT(_[A-Z0-9_]+)?$|_PORT_\d+_(TCP|UDP|SCTP)_PORT$/, /^\d+$/],
  [/_PORT$|_PORT_\d+_(TCP|UDP|SCTP)$/, /^(tcp|udp|sctp):\/\//],
  [/_PORT_\d+_(TCP|UDP|SCTP)_PROTO$/, /^(tcp|udp|sctp)$/],
];

/** True for an EYRIE_ variable that is read as a setting. */
export function isSettingEnv(name: string, value: string | undefined): boolean {
  const upper = name.toUpperCase();
  if (!upper.startsWith(ENV_PREFIX) || NON_SETTING_ENV.has(upper)) return false;
  if (upper.includes('__')) return true;
  return !SERVICE_LINKS.some(([n, v]) => n.test(upper) && v.test(value ?? ''));
}

/** How a destination name is written inside an env var name: case-insensitive, `-` and `.` as `_`. */
export const envNameOf = (destination: string): string => destination.toLowerCase().replace(/[-.]/g, '_');

/**
 * Applies `EYRIE_SECTION__KEY=value` overrides to the raw native tree, e.g. `EYRIE_LISTEN__PORT=2802`,
 * `EYRIE_AUTH__TOKENS=a,b`, `EYRIE_ENRICH__CUSTOM_FIELDS__CLUSTER=prod`,
 * `EYRIE_DESTINATIONS__MY_HOOK__URL=…` (destinations by name) and `EYRIE_AUTH__TOKENS_FILE=/run/secrets/t`.
 * Values are converted to the setting's type; what does not fit is reported by validation, located at
 * the variable. Returns the names applied.
 */
export function applyEnvOverrides(
  data: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  types: DestinationTypes,
  issues: Issues,
): string[] {
  const applied: string[] = [];
  const names = Object.keys(env)
    .filter((name) => isSettingEnv(name, env[name]))
    .sort();
  for (const name of names) {
    if (new Override(name, env, data, types, issues).apply()) applied.push(name);
  }
  return applied;
}

const NOT_FROM_ENV =
  'cannot be set from the environment (a list or map of sections, such as sources.files or filter.fields); write it in the YAML, with ${VAR} where a value must come from the environment';

/** A list of sections (`sources.grpc`) or a map of sections (`filter.fields`): no variable can name its entries. */
function holdsSections(schema: JsonSchema): boolean {
  const items = schema.type === 'array' ? itemsOf(schema) : mapValueSchema(schema);
  return items !== undefined && propertiesOf(items) !== undefined;
}

class Override {
  private readonly segments: string[];
  private readonly name: string;
  private readonly value: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly root: Record<string, unknown>;
  private readonly types: DestinationTypes;
  private readonly issues: Issues;

  constructor(
    name: string,
    env: NodeJS.ProcessEnv,
    root: Record<string, unknown>,
    types: DestinationTypes,
    issues: Issues,
  ) {
    this.name = name;
    this.value = env[name] ?? '';
    this.env = env;
    this.root = root;
    this.types = types;
    this.issues = issues;
    this.segments = name.slice(ENV_PREFIX.length).split('__');
  }

  apply(): boolean {
    if (this.segments.some((s) => s === '')) return this.fail('is not a setting (separate keys with "__")');
    let schema = nativeSchema as unknown as JsonSchema;
    let node: Record<string, unknown> = this.root;
    const path: PathSegment[] = [];
    for (const [i, segment] of this.segments.entries()) {
      const last = i === this.segments.length - 1;
      if (path.length === 1 && path[0] === 'destinations') {
        const list = Array.isArray(node.destinations) ? (node.destinations as unknown[]) : [];
        const index = list.findIndex(
          (d) =>
            isPlainObject(d) && typeof d.name === 'string' && envNameOf(d.name) === segment.toLowerCase(),
        );
        if (index < 0) {
          const known = list.flatMap((d) => (isPlainObject(d) && typeof d.name === 'string' ? [d.name] : []));
          return this.fail(
            `no destination named "${segment.toLowerCase()}" (destinations: ${known.join(', ') || 'none'})`,
          );
        }
        if (last) return this.fail('is a destination; set one of its keys, e.g. …__FILTER__MINIMUM_PRIORITY');
        const entry = list[index] as Record<string, unknown>;
        const type = typeOfEntry(entry, this.types);
        // An unknown type is reported on the entry itself; its options cannot be checked from here.
        if (!type && !['name', 'type', 'filter'].includes(this.segments[i + 1]!.toLowerCase())) return false;
        schema = entrySchema(type);
        node = entry;
        path.push(index);
        continue;
      }
      const property = findProperty(schema, segment);
      if (property !== undefined) {
        const propertySchema = propertiesOf(schema)![property]!;
        if (last) return this.set(node, property, propertySchema, [...path, property]);
        if (path.length === 0 && property === 'destinations') {
          path.push(property);
          continue;
        }
        // Checked before the walk goes down: making `{}` of the YAML's list would be reported at the file.
        if (holdsSections(propertySchema)) return this.fail(NOT_FROM_ENV);
        if (!isPlainObject(node[property])) node[property] = {};
        node = node[property] as Record<string, unknown>;
        schema = propertySchema;
        path.push(property);
        continue;
      }
      const fileBase =
        last && /_file$/i.test(segment) ? findProperty(schema, segment.slice(0, -'_file'.length)) : undefined;
      if (fileBase !== undefined) {
        // Both variables set: which one won would depend on their names' order, as in the YAML an error.
        const valueVariable = Object.keys(this.env).find(
          (n) => n.toUpperCase() === this.name.slice(0, -'_file'.length).toUpperCase(),
        );
        if (valueVariable !== undefined)
          return this.fail(`set either ${valueVariable} or ${this.name}, not both`);
        // Resolved later with the YAML's own `X_file` keys (secret-files.ts); the env var wins over X.
        removeKey(node, fileBase);
        return this.set(node, `${fileBase}_file`, { type: 'string' }, [...path, `${fileBase}_file`]);
      }
      const valueSchema = mapValueSchema(schema);
      // An entry of a map of sections (a filter.fields condition), at its own level or below.
      if (valueSchema && propertiesOf(valueSchema)) return this.fail(NOT_FROM_ENV);
      if (valueSchema && last) {
        const key =
          Object.keys(node).find((k) => k.toLowerCase() === segment.toLowerCase()) ?? segment.toLowerCase();
        return this.set(node, key, valueSchema, [...path, key]);
      }
      return this.unknown(schema, i);
    }
    return false;
  }

  private set(node: Record<string, unknown>, key: string, schema: JsonSchema, path: PathSegment[]): boolean {
    if (path.length === 1 && path[0] === 'destinations') {
      return this.fail(
        'is a list; set a key of one destination, e.g. EYRIE_DESTINATIONS__NAME__FILTER__MINIMUM_PRIORITY',
      );
    }
    if (holdsSections(schema)) return this.fail(NOT_FROM_ENV);
    if (propertiesOf(schema)) {
      return this.fail(
        `is a section; set one of its keys, e.g. ${this.name}__${Object.keys(propertiesOf(schema) ?? {})[0]?.toUpperCase() ?? 'KEY'}`,
      );
    }
    if (mapValueSchema(schema))
      return this.fail(`is a map; set one entry per variable, e.g. ${this.name}__KEY=value`);
    node[key] = coerceText(this.value, schema);
    removeKey(node, `${key}_file`);
    this.issues.origins.replace(path, { env: this.name });
    return true;
  }

  private unknown(schema: JsonSchema, index: number): false {
    const segment = this.segments[index]!.toLowerCase();
    const known = Object.keys(propertiesOf(schema) ?? {});
    // EYRIE_LISTEN_PORT: one "_" where "__" was meant.
    const joined = known.find((p) => segment.startsWith(`${p}_`));
    const guess =
      joined === undefined ? closest(segment, known) : `${joined}__${segment.slice(joined.length + 1)}`;
    const fix =
      guess === undefined
        ? ''
        : `; did you mean ${ENV_PREFIX}${[...this.segments.slice(0, index), guess].map((s) => s.toUpperCase()).join('__')}?`;
    return this.fail(`unknown setting${fix}`);
  }

  private fail(message: string): false {
    this.issues.add([], { env: this.name }, message);
    return false;
  }
}
