import type { FalcoEvent } from './falco-event.ts';
import { ExactNumber, stringifyJson, type JsonValue } from './json.ts';
import { sortUtf8 } from './utf8-order.ts';

/**
 * Serializes an event exactly as Falcosidekick's `json.Marshal(FalcoPayload)` does, so webhook-style
 * destinations and anything parsing Falcosidekick's output see the same bytes:
 * key order uuid, output, priority, rule, time, output_fields, source, tags (omitted when empty),
 * hostname (omitted when empty); map keys sorted at every depth; numbers with their original text;
 * `<`, `>`, `&`, U+2028 and U+2029 escaped as Go does; invalid UTF-16 as U+FFFD (Go's invalid UTF-8);
 * time as Go's RFC3339Nano (trailing zeros trimmed).
 */
export function toSidekickJson(event: FalcoEvent): string {
  // One native JSON.stringify over an object built in Go's key order is several times faster than
  // writing each value. Go's escapes are applied to the whole text afterwards: <, >, &, U+2028/9 can
  // only occur inside strings.
  const fields = sortedKeys(event.output_fields);
  if (fields === UNSORTABLE) return slowSidekickJson(event);
  const ordered: Record<string, unknown> = {
    uuid: event.uuid,
    output: event.output,
    priority: event.priority,
    rule: event.rule,
    time: goTime(event.time),
    output_fields: fields,
    source: event.source,
  };
  if (event.tags.length > 0) ordered.tags = event.tags;
  if (event.hostname) ordered.hostname = event.hostname;
  const json = stringifyJson(ordered);
  // JSON.stringify writes a lone surrogate as a \ud8xx escape, where Go writes U+FFFD.
  if (LONE_SURROGATE_ESCAPE.test(json)) return slowSidekickJson(event);
  return GO_ESCAPES.test(json) ? json.replace(GO_ESCAPES, (c) => GO_ESCAPE[c]!) : json;
}

const GO_ESCAPES = /[<>&\u2028\u2029]/g;
const GO_ESCAPE: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};
const LONE_SURROGATE_ESCAPE = /\\ud[89a-f][0-9a-f]{2}/;
const INDEX_LIKE = /^(?:0|[1-9]\d*)$/;
const UNSORTABLE = Symbol('unsortable');

/**
 * A copy with keys sorted at every depth, as Go writes maps. JS objects list integer-like keys first
 * whatever their insertion order; such keys (not seen in Falco fields) make the slow writer take over.
 */
function sortedKeys(value: JsonValue): unknown {
  if (value === null || typeof value !== 'object' || value instanceof ExactNumber) return value;
  if (Array.isArray(value)) {
    if (!value.some((v) => v !== null && typeof v === 'object')) return value;
    const items = value.map(sortedKeys);
    return items.includes(UNSORTABLE) ? UNSORTABLE : items;
  }
  const keys = sortUtf8(Object.keys(value));
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    // `out.__proto__ = v` would set the prototype, not a key: the slow writer keeps such keys.
    if (INDEX_LIKE.test(k) || k === '__proto__') return UNSORTABLE;
    const v = sortedKeys(value[k]!);
    if (v === UNSORTABLE) return UNSORTABLE;
    out[k] = v;
  }
  return out;
}

/** The value-by-value writer, for what the fast path cannot express. */
function slowSidekickJson(event: FalcoEvent): string {
  let out = '{';
  out += `"uuid":${str(event.uuid)},`;
  out += `"output":${str(event.output)},`;
  out += `"priority":${str(event.priority)},`;
  out += `"rule":${str(event.rule)},`;
  out += `"time":${str(goTime(event.time))},`;
  out += `"output_fields":${write(event.output_fields)},`;
  out += `"source":${str(event.source)}`;
  if (event.tags.length > 0) out += `,"tags":${write(event.tags)}`;
  if (event.hostname) out += `,"hostname":${str(event.hostname)}`;
  return out + '}';
}

function str(s: string): string {
  const json = JSON.stringify(s.toWellFormed());
  return GO_ESCAPES.test(json) ? json.replace(GO_ESCAPES, (c) => GO_ESCAPE[c]!) : json;
}

function write(v: JsonValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return str(v);
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (v instanceof ExactNumber) return v.text;
  if (Array.isArray(v)) return `[${v.map(write).join(',')}]`;
  const keys = sortUtf8(Object.keys(v));
  return `{${keys.map((k) => `${str(k)}:${write(v[k]!)}`).join(',')}}`;
}

/** Go's RFC3339Nano: fractional seconds without trailing zeros; `Z` or the original offset. */
export function goTime(time: string): string {
  // Go parses a zero offset into UTC, which it prints as Z.
  return time.replace(/[+-]00:00$/, 'Z').replace(/\.(\d+)(?=Z|[+-])/, (_m, frac: string) => {
    const trimmed = frac.replace(/0+$/, '');
    return trimmed === '' ? '' : `.${trimmed}`;
  });
}
