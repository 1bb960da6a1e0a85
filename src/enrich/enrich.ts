/**
 * Falcosidekick's event enrichment (its `newFalcoPayload`), in the same order:
 *
 * 1. `custom_fields` are merged into `output_fields`, overwriting keys of the same name.
 * 2. `custom_tags` are appended to `tags`.
 * 3. `templated_fields` run (Go text/template subset, see go-template.ts) with `output_fields` as
 *    data, so they see the custom fields; each result is stored as a string. An execution error keeps
 *    the partial output, as Falcosidekick does, and is reported in `warnings`.
 * 4. `tags` are sorted (plain code-unit order), when there are any.
 *    Falcosidekick counts its metrics here, so `counted` is the event at this point: its labels carry
 *    the full values and the keys as sent, before steps 5 and 7 rename or cut them.
 * 5. `bracket_replacer`: in every key containing `[`, `]` is removed and `[` replaced
 *    (`proc.aname[2]` → `proc.aname_2` with `_`). A renamed key overwrites an existing key of that name.
 * 6. `output_field_format`, only when `output` has Falco's `<time>: <Priority> <text>` form:
 *    placeholders `<timestamp> <priority> <output> <custom_fields> <templated_fields> <tags>`, then one
 *    trailing `" "`, `"( )"`, `"()"` and `" "` are trimmed, in that order.
 * 7. Truncation: when the event serialized as Falcosidekick does is over 4096 bytes, every string
 *    output field over 512 bytes becomes its first 507 bytes + `[...]`, and the same replacement is made
 *    inside `output`. Go cuts at byte 507 even inside a multi-byte character (json.Marshal then writes
 *    U+FFFD for the broken bytes); we cut at the last whole UTF-8 character within 507 bytes instead,
 *    so the result may be up to 3 bytes shorter and is always valid text.
 *
 * Differences from Falcosidekick, on purpose:
 * - Go iterates the `customfields` and `templatedfields` maps in random order; we use the config order,
 *   so `<custom_fields>` / `<templated_fields>` are stable and a templated field sees the templated
 *   fields configured before it (in Go that depended on luck).
 * - A template that does not parse is a startup error (createEnricher throws); Falcosidekick logs it
 *   and skips the field on every event.
 *
 * The incoming event is never mutated. The result shares what did not change with it (with an empty
 * config and nothing to sort or truncate, the very same event object is returned), so treat events as
 * immutable downstream.
 */
import type { EnrichConfig } from '../config/types.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { JsonObject, JsonValue } from '../event/json.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import { compareUtf8, sortUtf8 } from '../event/utf8-order.ts';
import { compileTemplate, TemplateError, type Template } from './go-template.ts';

export interface EnrichResult {
  event: FalcoEvent;
  /** Templated fields that failed while running (their partial output was kept). */
  warnings: string[];
  /** The event after step 4, which the metric counters read (often `event` itself, whose `output`
   * may be step 6's: the counters do not read it). */
  counted: FalcoEvent;
}

export type Enricher = (event: FalcoEvent) => EnrichResult;

/** A templated field that does not compile. */
export class EnrichConfigError extends Error {
  /** The templated field's key. */
  readonly field: string;
  constructor(field: string, message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'EnrichConfigError';
    this.field = field;
  }
}

/** The placeholders of `output_field_format`. */
const OUTPUT_PLACEHOLDER = /<(timestamp|priority|output|custom_fields|templated_fields|tags)>/g;

/** Falcosidekick's `regOutputFormat`; Go's unanchored MatchString, `(?i)`, and `.*` that may be empty. */
const FALCO_OUTPUT =
  /[0-9:]+\.[0-9]+: (?:Debug|Informational|Notice|Warning|Error|Critical|Alert|Emergency) /iu;

export const TRUNCATE_EVENT_BYTES = 4096;
export const TRUNCATE_FIELD_BYTES = 512;
export const TRUNCATE_KEEP_BYTES = 507;
export const TRUNCATE_MARK = '[...]';

/** Sets an own property, even one named `__proto__` (keys come from events and config). */
function put(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

/**
 * A shallow copy of output_fields that stays fast to extend: V8 makes `{ ...fields }` followed by new
 * keys ~10× slower (2.7 µs for 12 fields) than building the copy key by key.
 */
function copyFields(fields: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const key in fields) put(out, key, fields[key]);
  return out;
}

/** Every occurrence, literally (a function replacement, so `$&` in the value is not a pattern). */
function replaceAll(s: string, search: string, replacement: string): string {
  return s.includes(search) ? s.replaceAll(search, () => replacement) : s;
}

function trimSuffix(s: string, suffix: string): string {
  return s.endsWith(suffix) ? s.slice(0, s.length - suffix.length) : s;
}

function isSorted(tags: readonly string[]): boolean {
  for (let i = 1; i < tags.length; i++) if (compareUtf8(tags[i - 1]!, tags[i]!) > 0) return false;
  return true;
}

/** True when some string field might be over 512 UTF-8 bytes (cheap check first). */
function hasLongString(fields: JsonObject): boolean {
  for (const key in fields) {
    const v = fields[key];
    if (
      typeof v === 'string' &&
      v.length > TRUNCATE_FIELD_BYTES / 3 &&
      Buffer.byteLength(v, 'utf8') > TRUNCATE_FIELD_BYTES
    )
      return true;
  }
  return false;
}

/** The longest prefix of s that is at most maxBytes in UTF-8, cut between whole characters. */
export function utf8Prefix(s: string, maxBytes: number): string {
  let bytes = 0;
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    let size = 3;
    let units = 1;
    if (c < 0x80) size = 1;
    else if (c < 0x800) size = 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      size = 4;
      units = 2;
    }
    if (bytes + size > maxBytes) break;
    bytes += size;
    i += units;
  }
  return s.slice(0, i);
}

function renameBracketKeys(fields: JsonObject, replacer: string): JsonObject {
  const out: JsonObject = {};
  const renamed: [string, JsonValue][] = [];
  for (const key of Object.keys(fields)) {
    const value = fields[key]!;
    if (key.includes('[')) renamed.push([key.split(']').join('').split('[').join(replacer), value]);
    else put(out, key, value);
  }
  // In Go the renamed key is written over any existing key of that name.
  for (const [key, value] of renamed) put(out, key, value);
  return out;
}

/**
 * Compiles the enrichment once (templates included: a template that does not compile throws
 * EnrichConfigError naming the field) and returns the per-event function.
 */
export function createEnricher(config: EnrichConfig): Enricher {
  const customFields = Object.entries(config.custom_fields);
  const customTags = [...config.custom_tags];
  const templates: [string, Template][] = Object.entries(config.templated_fields).map(([key, source]) => {
    try {
      return [key, compileTemplate(source, key)];
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new EnrichConfigError(key, `enrich.templated_fields["${key}"]: ${reason}`, err);
    }
  });
  const replacer = config.bracket_replacer;
  const format = config.output_field_format;
  // Falcosidekick's `customFields` string: "k=v k2=v2" (trailing space trimmed).
  const customFieldsText = customFields.map(([k, v]) => `${k}=${v}`).join(' ');
  const noConfig =
    customFields.length === 0 &&
    customTags.length === 0 &&
    templates.length === 0 &&
    replacer === '' &&
    format === '';

  return function enrich(event: FalcoEvent): EnrichResult {
    if (noConfig && isSorted(event.tags) && !hasLongString(event.output_fields)) {
      return { event, warnings: [], counted: event };
    }

    const warnings: string[] = [];
    let fields = event.output_fields;
    let ownFields = false;
    let tags = event.tags;
    let output = event.output;

    // 1. custom fields
    if (customFields.length > 0) {
      fields = copyFields(fields);
      ownFields = true;
      for (const [key, value] of customFields) put(fields, key, value);
    }

    // 2. custom tags
    if (customTags.length > 0) tags = tags.concat(customTags);

    // 3. templated fields
    let templatedText = '';
    if (templates.length > 0) {
      if (!ownFields) {
        fields = copyFields(fields);
        ownFields = true;
      }
      const parts: string[] = [];
      for (const [key, template] of templates) {
        let value: string;
        try {
          value = template.execute(fields);
        } catch (err) {
          if (!(err instanceof TemplateError)) throw err;
          value = err.partialOutput;
          warnings.push(`templated field "${key}": ${err.message}`);
        }
        put(fields, key, value);
        parts.push(`${key}=${value}`);
      }
      templatedText = parts.join(' ');
    }

    // 4. sorted tags
    if (tags.length > 1 && !isSorted(tags)) {
      if (tags === event.tags) tags = tags.slice();
      sortUtf8(tags);
    }
    const countedFields = fields;

    // 5. bracket replacer
    if (replacer !== '') {
      for (const key in fields) {
        if (key.includes('[')) {
          fields = renameBracketKeys(fields, replacer);
          ownFields = true;
          break;
        }
      }
    }

    // 6. output format
    if (format !== '' && FALCO_OUTPUT.test(output)) {
      // Go: elements := strings.Split(output, " "); needs 3 elements; <output> = elements[2:] joined.
      const first = output.indexOf(' ');
      const second = first < 0 ? -1 : output.indexOf(' ', first + 1);
      if (second >= 0) {
        // One pass over the format, so no value is searched for placeholders. Go replaces them one
        // after the other: an alert text holding `<templated_fields>` (a command line can) was
        // expanded too; 25,000 of them with a 500 kB field passed V8's string limit, the request
        // failed with 500 and Falco dropped the alert.
        const values: Record<string, string> = {
          timestamp: trimSuffix(output.slice(0, first), ':'),
          priority: event.priority,
          output: output.slice(second + 1),
          custom_fields: customFieldsText,
          templated_fields: templatedText,
          tags: tags.join(','),
        };
        let n = format.replace(OUTPUT_PLACEHOLDER, (_placeholder, name: string) => values[name]!);
        n = trimSuffix(n, ' ');
        n = trimSuffix(n, '( )');
        n = trimSuffix(n, '()');
        n = trimSuffix(n, ' ');
        output = n;
      }
    }

    // 7. truncation (only computed when some field could need it)
    if (hasLongString(fields)) {
      const candidate: FalcoEvent = { ...event, output, output_fields: fields, tags };
      if (Buffer.byteLength(toSidekickJson(candidate), 'utf8') > TRUNCATE_EVENT_BYTES) {
        if (!ownFields || fields === countedFields) fields = copyFields(fields);
        for (const key of Object.keys(fields)) {
          const value = fields[key];
          if (typeof value === 'string' && Buffer.byteLength(value, 'utf8') > TRUNCATE_FIELD_BYTES) {
            const cut = utf8Prefix(value, TRUNCATE_KEEP_BYTES) + TRUNCATE_MARK;
            output = replaceAll(output, value, cut);
            put(fields, key, cut);
          }
        }
      }
    }

    if (fields === event.output_fields && tags === event.tags && output === event.output) {
      return { event, warnings, counted: event };
    }
    const enriched: FalcoEvent = { ...event, output, output_fields: fields, tags };
    let counted = enriched;
    if (fields !== countedFields) {
      const unchanged = countedFields === event.output_fields && tags === event.tags;
      counted = unchanged ? event : { ...event, output_fields: countedFields, tags };
    }
    return { event: enriched, warnings, counted };
  };
}
