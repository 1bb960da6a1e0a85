import { isIP } from 'node:net';
import { coerceText, leadingZeroProblem } from './coerce.ts';
import type { DestinationTypes } from './destination-entry.ts';
import { schemaAt } from './json-schema.ts';
import type { JsonSchema } from './json-schema.ts';
import type { Issues, Path, PathSegment } from './origins.ts';
import { formatPath } from './origins.ts';
import { getAt, isPlainObject, setAt } from './plain.ts';
import { nativeSchema } from './schema.ts';
import { applySidekickEnv } from './sidekick-env.ts';
import {
  DEBUG_KEY,
  CLIENT_TLS_SETTINGS,
  SIDEKICK_SETTINGS,
  knownSectionKeys,
  sidekickTopLevelKeys,
  supportedSections,
} from './sidekick-keys.ts';
import type { SidekickSetting } from './sidekick-keys.ts';
import { SIDEKICK_OUTPUTS, isEnabling } from './sidekick-outputs.ts';
import { translateOutput } from './sidekick-output.ts';
import { didYouMean } from './suggest.ts';

/**
 * Falcosidekick compatibility: a Falcosidekick config.yaml (and its env vars) is read unchanged and
 * translated to Eyrie's native raw config, which then goes through the same validation as a native file.
 * Where Falcosidekick would silently ignore or mangle a value (a bad port, a misspelt priority, an
 * output it cannot find), Eyrie refuses with the fix, because a quietly lost alert is the worst outcome.
 */

export interface SidekickContext {
  env: NodeJS.ProcessEnv;
  types: DestinationTypes;
  issues: Issues;
  warnings: string[];
  /** Whether Falcosidekick env vars apply (a Falcosidekick file, or no file at all). */
  applyEnv: boolean;
}

/** Whether a top-level key (any case) only exists in Falcosidekick's format. */
export function isSidekickKey(key: string, types: DestinationTypes): boolean {
  return sidekickTopLevelKeys(types).has(key.toLowerCase());
}

/** Translates Falcosidekick data (`{}` when there is no file) to the native raw tree. */
export function translateSidekick(
  source: Record<string, unknown>,
  context: SidekickContext,
): { data: Record<string, unknown>; envApplied: string[] } {
  const tree = lowerKeys(source, [], [], context) as Record<string, unknown>;
  const envApplied = context.applyEnv
    ? applySidekickEnv(tree, context.env, context.types, context.issues)
    : [];
  const translator = new Translator(tree, context);
  translator.checkKeys();
  translator.settings();
  translator.debug();
  translator.outputs();
  translator.clientTls();
  return { data: translator.out, envApplied };
}

/** Viper reads keys case-insensitively, including keys inside maps such as customfields. */
function lowerKeys(value: unknown, original: Path, lowered: Path, context: SidekickContext): unknown {
  if (formatPath(original) !== formatPath(lowered)) context.issues.origins.copyOne(original, lowered);
  if (Array.isArray(value))
    return value.map((v, i) => lowerKeys(v, [...original, i], [...lowered, i], context));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  const firstSpelling = new Map<string, string>();
  for (const [key, child] of Object.entries(value)) {
    const lower = key.toLowerCase();
    const previous = firstSpelling.get(lower);
    if (previous !== undefined) {
      context.issues.atKey(
        [...original, key],
        `same setting as "${previous}" (Falcosidekick keys ignore case); keep one`,
      );
      continue;
    }
    firstSpelling.set(lower, key);
    if (
      key !== lower &&
      lowered.length === 1 &&
      ['customfields', 'templatedfields'].includes(String(lowered[0]))
    ) {
      context.warnings.push(
        `falcosidekick: ${formatPath([...original, key])} becomes field "${lower}" (Falcosidekick lower-cases these keys too)`,
      );
    }
    out[lower] = lowerKeys(child, [...original, key], [...lowered, lower], context);
  }
  return out;
}

const isScalar = (v: unknown): v is string | number | boolean =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

class Translator {
  readonly out: Record<string, unknown> = {};
  private readonly destinations: Record<string, unknown>[] = [];
  private readonly issues: Issues;
  private usesMutualTls = false;
  private hasHttpOutput = false;
  private readonly tree: Record<string, unknown>;
  private readonly context: SidekickContext;

  constructor(tree: Record<string, unknown>, context: SidekickContext) {
    this.tree = tree;
    this.context = context;
    this.issues = context.issues;
  }

  /** Unknown top-level keys, and unknown keys in the sections whose every key is known. */
  checkKeys(): void {
    const topLevel = sidekickTopLevelKeys(this.context.types);
    for (const key of Object.keys(this.tree)) {
      if (!topLevel.has(key)) {
        this.issues.atKey([key], `unknown Falcosidekick setting "${key}"${didYouMean(key, topLevel)}`);
      }
    }
    for (const [section, keys] of knownSectionKeys()) {
      const node = this.tree[section];
      if (node === undefined || node === null) continue;
      if (!isPlainObject(node)) {
        this.issues.atValue([section], 'must be a section of keys');
        continue;
      }
      for (const key of Object.keys(node)) {
        if (!keys.has(key)) {
          this.issues.atKey(
            [section, key],
            `unknown key "${key}" in "${section}"${didYouMean(key, keys)} (known: ${[...keys].join(', ')})`,
          );
        }
      }
    }
  }

  settings(): void {
    for (const setting of SIDEKICK_SETTINGS) {
      const path = setting.key.split('.');
      const value = getAt(this.tree, path);
      if (value === undefined || value === null) continue;
      const converted = this.convert(value, setting, path);
      if (converted === undefined) continue;
      setAt(this.out, setting.native, converted);
      this.issues.origins.copy(path, setting.native);
      this.note(path, setting.native.join('.'));
    }
  }

  /** Client TLS settings only matter to the outputs that use them; say so when none does. */
  clientTls(): void {
    for (const key of CLIENT_TLS_SETTINGS) {
      const value = getAt(this.tree, key.split('.'));
      if (!isEnabling(value) || (key === 'mutualtlsfilespath' && value === '/etc/certs')) continue;
      const used = key.startsWith('tlsclient.') ? this.hasHttpOutput : this.usesMutualTls;
      if (used) continue;
      const user = key.startsWith('tlsclient.') ? 'HTTP outputs' : 'outputs with mutualtls: true';
      this.context.warnings.push(
        `falcosidekick: ${key} is not used: it applies to ${user}, and there are none`,
      );
    }
  }

  debug(): void {
    const raw = this.tree[DEBUG_KEY];
    if (raw === undefined || raw === null) return;
    const value = typeof raw === 'string' ? coerceText(raw, { type: 'boolean' }) : raw;
    if (typeof value !== 'boolean') {
      const env = this.issues.origins.value([DEBUG_KEY])?.env;
      // DEBUG=express:* and the like belong to other tools; only the YAML key is surely Falcosidekick's.
      if (env === undefined) this.issues.atValue([DEBUG_KEY], 'must be true or false');
      else
        this.context.warnings.push(
          `falcosidekick: ${env}=${this.context.env[env] ?? ''} is not true or false; debug output stays off`,
        );
      return;
    }
    if (!value) return;
    this.issues.origins.copyOne([DEBUG_KEY], ['destinations', this.destinations.length]);
    // Falcosidekick's debug output is best effort; journaling it to disk would only cost.
    this.destinations.push({ name: 'debug', type: 'stdout', filter: {}, durability: 'memory' });
    this.out.destinations = this.destinations;
    this.note([DEBUG_KEY], "destination 'debug' (type stdout)", 'debug: true');
  }

  outputs(): void {
    const supported = supportedSections(this.context.types);
    for (const [section, { type, mapping }] of supported) {
      const destinationType = this.context.types.get(type)!;
      const translated = translateOutput(
        section.split('.'),
        destinationType,
        mapping,
        this.destinations.length,
        {
          tree: this.tree,
          issues: this.issues,
          warnings: this.context.warnings,
        },
      );
      if (!translated) continue;
      this.destinations.push(translated.entry);
      this.out.destinations = this.destinations;
      this.usesMutualTls ||= translated.usesMutualTls;
      this.hasHttpOutput ||= translated.isHttp;
      this.note(
        [...section.split('.'), mapping.enabledBy.toLowerCase()],
        `destination '${section}' (type ${type})`,
      );
    }
    for (const [section, key] of Object.entries(SIDEKICK_OUTPUTS)) {
      if (supported.has(section)) continue;
      const path = [...section.split('.'), key];
      if (!isEnabling(getAt(this.tree, path))) continue;
      const env = this.issues.origins.value(path)?.env;
      const fix =
        env === undefined
          ? `remove the "${section}" section or leave ${section}.${key} empty`
          : `unset ${env}`;
      this.issues.atValue(path, `output "${section}" is not supported by this version of Eyrie; ${fix}`);
    }
  }

  private convert(value: unknown, setting: SidekickSetting, path: PathSegment[]): unknown {
    switch (setting.kind) {
      case 'text':
      case 'address': {
        if (!isScalar(value)) return this.invalid(path, 'must be a string');
        const text = String(value);
        if (setting.kind === 'address' && text !== '' && isIP(text) === 0) {
          return this.invalid(
            path,
            `"${text}" is not an IP address; use one such as 127.0.0.1, or "" for all interfaces`,
          );
        }
        return text;
      }
      case 'typed':
        return this.typed(value, setting, path);
      case 'list':
      case 'tags':
        return this.list(value, path, setting);
      case 'map':
        return this.map(value, path, setting.key === 'customfields');
    }
  }

  /** Numbers and booleans, converted from strings as viper would. Ports must be 1-65535: Falcosidekick
   * only logs a bad one and, for 0, listens on a random port. */
  private typed(value: unknown, setting: SidekickSetting, path: PathSegment[]): unknown {
    const schema = schemaAt(nativeSchema as unknown as JsonSchema, setting.native) ?? {};
    const leadingZero = leadingZeroProblem(value, schema);
    if (leadingZero !== undefined) return this.invalid(path, leadingZero);
    const converted = typeof value === 'string' ? coerceText(value, schema) : value;
    const isPort = setting.native.at(-1)?.endsWith('port') === true;
    if (
      isPort &&
      !(Number.isInteger(converted) && (converted as number) >= 1 && (converted as number) <= 65535)
    ) {
      const note = converted === 0 ? ' (Falcosidekick would listen on a random port)' : '';
      return this.invalid(path, `must be an integer 1-65535${note}`);
    }
    return converted;
  }

  private list(value: unknown, path: PathSegment[], setting: SidekickSetting): unknown {
    // Falcosidekick removes the spaces of prometheus.extralabels and of the CUSTOMTAGS env var; other
    // values keep theirs (viper splits a string from the file without trimming).
    const fromEnv = this.issues.origins.value(path)?.env !== undefined;
    const removeSpaces = setting.key === 'prometheus.extralabels' || (setting.kind === 'tags' && fromEnv);
    const clean = (s: string): string => (removeSpaces ? s.replace(/\s+/g, '') : s.trim());
    if (typeof value === 'string') {
      const pieces = value.split(',');
      // `customtags: a, b` gives Falcosidekick the tag " b"; Eyrie trims it, and says so.
      const changed = removeSpaces || fromEnv ? [] : pieces.filter((p) => p !== clean(p));
      if (changed.length > 0) {
        this.context.warnings.push(
          `falcosidekick: ${setting.key} "${value}": Falcosidekick keeps the spaces around commas (${changed.map((p) => JSON.stringify(p)).join(', ')}); Eyrie trims them. Write a YAML list to get the same values from both`,
        );
      }
      return pieces.map(clean).filter((s) => s !== '');
    }
    if (!Array.isArray(value)) return this.invalid(path, 'must be a list, or a comma-separated string');
    const items: string[] = [];
    value.forEach((item, i) => {
      if (isScalar(item)) {
        if (clean(String(item)) !== '') items.push(clean(String(item)));
      } else if (item !== null) this.issues.atValue([...path, i], 'must be a string');
    });
    return items;
  }

  private map(value: unknown, path: PathSegment[], isCustomFields: boolean): unknown {
    if (!isPlainObject(value)) return this.invalid(path, 'must be a map of key: value');
    const out: Record<string, string> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item !== null && !isScalar(item)) {
        this.issues.atValue([...path, key], 'must be a string');
        continue;
      }
      out[key] = item === null ? '' : String(item);
      const fromEnv = this.issues.origins.value([...path, key])?.env !== undefined;
      if (isCustomFields && !fromEnv && out[key].startsWith('%')) {
        this.context.warnings.push(
          `falcosidekick: customfields.${key} "${out[key]}" is kept as written: like Falcosidekick, Eyrie reads %VAR only in the CUSTOMFIELDS env var (write \${VAR} to read an env var here)`,
        );
      }
    }
    return out;
  }

  private invalid(path: Path, message: string): undefined {
    this.issues.atValue(path, message);
    return undefined;
  }

  /** Records what was translated, for `eyrie check` and the startup log. */
  private note(path: Path, target: string, what?: string): void {
    const origin = this.issues.origins.value(path);
    const source =
      origin?.env !== undefined ? `env ${origin.env}` : (what ?? origin?.shownPath ?? formatPath(path));
    this.context.warnings.push(`falcosidekick: ${source} → ${target}`);
  }
}
