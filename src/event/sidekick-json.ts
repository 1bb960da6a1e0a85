import type { FalcoEvent } from './falco-event.ts';
import { ExactNumber, type JsonValue } from './json.ts';

/**
 * Serializes an event exactly as Falcosidekick's `json.Marshal(FalcoPayload)` does, so webhook-style
 * destinations and anything parsing Falcosidekick's output see the same bytes:
 * key order uuid, output, priority, rule, time, output_fields, source, tags (omitted when empty),
 * hostname (omitted when empty); map keys sorted at every depth; numbers with their original text;
 * `<`, `>`, `&`, U+2028 and U+2029 escaped as Go does; time as Go's RFC3339Nano (trailing zeros trimmed).
 */
export function toSidekickJson(event: FalcoEvent): string {
  let out = '{';
  out += `"uuid":${str(event.uuid)},`;
  out += `"output":${str(event.output)},`;
  out += `"priority":${str(event.priority)},`;
  out += `"rule":${str(event.rule)},`;
  out += `"time":${str(goTime(event.time))},`;
  out += `"output_fields":${value(event.output_fields)},`;
  out += `"source":${str(event.source)}`;
  if (event.tags.length > 0) out += `,"tags":${value(event.tags)}`;
  if (event.hostname) out += `,"hostname":${str(event.hostname)}`;
  return out + '}';
}

const GO_ESCAPES = /[<>&\u2028\u2029]/g;
const GO_ESCAPE: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

function str(s: string): string {
  const json = JSON.stringify(s.toWellFormed());
  return GO_ESCAPES.test(json) ? json.replace(GO_ESCAPES, (c) => GO_ESCAPE[c]!) : json;
}

function value(v: JsonValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return str(v);
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (v instanceof ExactNumber) return v.text;
  if (Array.isArray(v)) return `[${v.map(value).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${str(k)}:${value(v[k]!)}`).join(',')}}`;
}

/** Go's RFC3339Nano: fractional seconds without trailing zeros; `Z` or the original offset. */
export function goTime(time: string): string {
  // Go parses a zero offset into UTC, which it prints as Z.
  return time.replace(/[+-]00:00$/, 'Z').replace(/\.(\d+)(?=Z|[+-])/, (_m, frac: string) => {
    const trimmed = frac.replace(/0+$/, '');
    return trimmed === '' ? '' : `.${trimmed}`;
  });
}
