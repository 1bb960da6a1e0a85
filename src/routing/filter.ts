/**
 * Per-destination event filters (`destinations[].filter`), compiled once into a predicate.
 *
 * Semantics (see DestinationFilterConfig):
 * - Every criterion that is given must hold (AND); an empty filter passes everything. An empty list
 *   (`rules: []`, `tags: { any: [] }`, `in: []`, …) counts as not given: it restricts nothing.
 * - `minimum_priority`: the event is at least that severe. Falcosidekick's test event (rule
 *   `Test rule`) bypasses it — and only it: a `rules` list still has to admit the test rule.
 * - `rules` / `exclude_rules` / `hostnames`: names or globs (`*` = any run of characters, `?` = one
 *   character, everything else literal, case-sensitive, whole-string). `rules`: the rule matches one;
 *   `exclude_rules`: it matches none; `hostnames`: the hostname matches one (an event without a
 *   hostname never matches a `hostnames` filter).
 * - `sources`: the source is one of them (exact).
 * - `tags.any`: at least one listed tag is on the event; `tags.all`: every listed tag is;
 *   `tags.none`: none is.
 * - `fields`: per output field, every given condition holds. Conditions compare the field's string
 *   form (strings as they are, numbers as their JSON text — exact for big integers —, booleans as
 *   `true`/`false`, objects as JSON) with the condition value's string form, so `equals: 1234`,
 *   `equals: "1234"` both match the number 1234. Big integers in the config should be quoted (YAML
 *   reads them as lossy numbers). A field that is absent counts as null:
 *   - `equals`: string forms are equal; `equals: null` matches only a null or absent field.
 *   - `in`: the string form is in the list; a null/absent field matches only if the list holds null.
 *   - `not_in`: exactly `!in` — a null/absent field passes unless the list holds null.
 *   - `regex`: JavaScript regex, unanchored (use `^…$` for a whole-value match), tested on the string
 *     form; a null/absent field fails.
 *   - `exists`: true = present and not null; false = absent or null.
 *   - Array values (Falco's list fields): `equals`, `in` and `regex` hold if ANY element matches;
 *     `not_in` holds if NO element is in the list (an empty array passes `not_in`, fails the others).
 * - `cel`: a CEL expression over `event` = { rule, priority, source, hostname ('' if none), tags,
 *   output, time (RFC 3339 string), output_fields }. Output field numbers written as integers become
 *   CEL `int` (exact, also beyond 2^53), other numbers `double`; CEL compares int and double with each
 *   other. Reading a missing key is an error: guard with `"k" in event.output_fields`,
 *   `has(event.output_fields.k)` or `event.output_fields.?k.orValue("")`. The expression is parsed and
 *   type-checked at compile time; at run time an error or a non-bool result means "no match" and is
 *   reported to `onError` (as an Error whose message starts with the setting's path, e.g.
 *   `destinations.hook.filter.cel: No such key: k8s.ns.name`), never thrown. `has()` takes only
 *   identifier keys: for Falco's dotted field names use `in` or `[?"k8s.ns.name"]`.
 */
import { asError } from '../util/error.ts';
// Side effect: a filter regex that backtracks without end on an event's text falls back to linear time.
import '../util/regex-backtracking-bound.ts';
import { Environment } from '@marcbachmann/cel-js';
import type { ParseResult } from '@marcbachmann/cel-js';
import type { DestinationFilterConfig, FieldCondition } from '../config/types.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { TEST_RULE } from '../event/falco-event.ts';
import { ExactNumber, stringifyJson, type JsonObject, type JsonValue } from '../event/json.ts';
import { PRIORITIES, parsePriority } from '../event/priority.ts';

/** A compiled filter: true when the event should go to the destination. */
export type EventFilter = (event: FalcoEvent) => boolean;

export interface FilterOptions {
  /**
   * Called when the CEL expression fails on an event (missing key, bad overload, …) or returns a
   * non-bool; the event then does not match. Errors thrown by the callback are swallowed.
   */
  onError?: (error: Error, event: FalcoEvent) => void;
}

/** An invalid filter; `path` locates the offending setting, e.g. `destinations[2].filter.cel`. */
export class FilterError extends Error {
  readonly path: string;
  readonly detail: string;
  constructor(path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = 'FilterError';
    this.path = path;
    this.detail = detail;
  }
}

const FILTER_KEYS = new Set([
  'minimum_priority',
  'rules',
  'exclude_rules',
  'sources',
  'tags',
  'hostnames',
  'fields',
  'cel',
]);
const TAG_KEYS = new Set(['any', 'all', 'none']);
const CONDITION_KEYS = new Set(['equals', 'in', 'not_in', 'regex', 'exists']);

const RANK = new Map<string, number>(PRIORITIES.map((p, i) => [p, i]));

/**
 * The string form a field value is compared by: strings as they are, numbers as their JSON text
 * (ExactNumber: its original text), booleans `true`/`false`, arrays and objects as JSON.
 * undefined for an absent or null value.
 */
export function fieldString(value: JsonValue | undefined): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      return undefined;
    default:
      if (value === null) return undefined;
      if (value instanceof ExactNumber) return value.text;
      return stringifyJson(value);
  }
}

/** An output field's value, or undefined when absent (own properties only: never `constructor` & co). */
export function fieldValue(fields: JsonObject, name: string): JsonValue | undefined {
  return Object.hasOwn(fields, name) ? fields[name] : undefined;
}

/**
 * Whole-string glob match: `*` any run of characters, `?` one character (code point), the rest literal.
 * Hand-written rather than a regex: `a*b*c*d` as a backtracking regex takes seconds on a long
 * non-matching rule name or hostname, which any sender can post. This greedy matcher backtracks only
 * to the last `*`, so it takes at most (value length × glob length) steps.
 */
export function globMatch(glob: string, value: string): boolean {
  let g = 0;
  let v = 0;
  let starG = -1;
  let starV = 0;
  while (v < value.length) {
    const gc = glob.charCodeAt(g);
    if (g < glob.length && gc === 42 /* * */) {
      starG = g++;
      starV = v;
    } else if (g < glob.length && gc === 63 /* ? */) {
      g++;
      v += codePointLength(value, v);
    } else if (g < glob.length && gc === value.charCodeAt(v)) {
      g++;
      v++;
    } else if (starG >= 0) {
      g = starG + 1;
      starV += codePointLength(value, starV);
      v = starV;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob.charCodeAt(g) === 42) g++;
  return g === glob.length;
}

/** 2 at a surrogate pair (one character above U+FFFF), else 1. */
function codePointLength(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff) {
    const next = text.charCodeAt(i + 1);
    if (next >= 0xdc00 && next <= 0xdfff) return 2;
  }
  return 1;
}

function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

/** Matches a string against names and globs: literals by Set lookup, then each glob. */
function compileNameMatcher(patterns: readonly string[]): (value: string) => boolean {
  const literals = new Set<string>();
  const globs: string[] = [];
  for (const p of patterns) {
    if (isGlob(p)) globs.push(p);
    else literals.add(p);
  }
  if (globs.length === 0) {
    if (literals.size === 1) {
      const only = [...literals][0]!;
      return (value) => value === only;
    }
    return (value) => literals.has(value);
  }
  return (value) => literals.has(value) || globs.some((glob) => globMatch(glob, value));
}

/** Whether any of an event's tags is in `set` (a loop, not `some`, on this per-event path). */
function hasAnyTag(tags: readonly string[], set: ReadonlySet<string>): boolean {
  for (let i = 0; i < tags.length; i++) if (set.has(tags[i]!)) return true;
  return false;
}

function checkStrings(value: unknown, path: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new FilterError(path, 'must be a list of strings');
  }
  return value.length === 0 ? undefined : value;
}

function fieldPath(where: string, name: string): string {
  return `${where}.fields[${JSON.stringify(name)}]`;
}

type Scalar = string | number | boolean | null;

/** String form of a condition value; null stays null. */
function conditionString(value: unknown, path: string): string | null {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      // YAML has already rounded 1234567890123456789 to ...800: it could never equal the field.
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        throw new FilterError(path, `integer ${String(value)} is beyond 2^53 and was rounded: quote it`);
      }
      // `3.10` (an image tag, a version) reaches here as 3.1, and `1e999` as Infinity: conditions compare
      // text, so the value as written could never match, and a `not_in` would silently let it through.
      if (!Number.isInteger(value)) {
        throw new FilterError(
          path,
          `${String(value)} is how YAML reads this number (3.10 reads as 3.1), and conditions compare text: quote the value as the field shows it`,
        );
      }
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    default:
      throw new FilterError(path, 'must be a string, number, boolean or null');
  }
}

/** Tests one scalar's string form (null = null or absent). */
type ScalarTest = (s: string | null) => boolean;

function elementString(value: JsonValue): string | null {
  return fieldString(value) ?? null;
}

/** True when the value (or, for an array, any element) passes `test`. */
function anyMatch(value: JsonValue | undefined, test: ScalarTest): boolean {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (test(elementString(value[i]!))) return true;
    return false;
  }
  return test(value === undefined ? null : elementString(value));
}

type ValueTest = (value: JsonValue | undefined) => boolean;

function compileCondition(name: string, condition: FieldCondition, where: string): ValueTest[] {
  const path = fieldPath(where, name);
  if (condition === null || typeof condition !== 'object' || Array.isArray(condition)) {
    throw new FilterError(path, 'must be a map of conditions (equals, in, not_in, regex, exists)');
  }
  for (const key of Object.keys(condition)) {
    if (!CONDITION_KEYS.has(key)) {
      throw new FilterError(
        `${path}.${key}`,
        'unknown condition: expected equals, in, not_in, regex or exists',
      );
    }
  }
  const tests: ValueTest[] = [];

  if (condition.exists !== undefined) {
    if (typeof condition.exists !== 'boolean')
      throw new FilterError(`${path}.exists`, 'must be true or false');
    const wanted = condition.exists;
    tests.push((v) => (v !== undefined && v !== null) === wanted);
  }

  if (condition.equals !== undefined) {
    const expected = conditionString(condition.equals, `${path}.equals`);
    const test: ScalarTest = expected === null ? (s) => s === null : (s) => s === expected;
    tests.push((v) => anyMatch(v, test));
  }

  const compileList = (list: unknown, key: string): ScalarTest | undefined => {
    if (list === undefined || list === null) return undefined;
    if (!Array.isArray(list)) throw new FilterError(`${path}.${key}`, 'must be a list');
    if (list.length === 0) return undefined;
    const set = new Set<string>();
    let hasNull = false;
    for (let i = 0; i < list.length; i++) {
      const s = conditionString(list[i] as unknown, `${path}.${key}[${i}]`);
      if (s === null) hasNull = true;
      else set.add(s);
    }
    return (s) => (s === null ? hasNull : set.has(s));
  };
  const inTest = compileList(condition.in, 'in');
  if (inTest) tests.push((v) => anyMatch(v, inTest));
  const notInTest = compileList(condition.not_in, 'not_in');
  if (notInTest) tests.push((v) => !anyMatch(v, notInTest));

  if (condition.regex !== undefined) {
    const rpath = `${path}.regex`;
    if (typeof condition.regex !== 'string') throw new FilterError(rpath, 'must be a string');
    let re: RegExp;
    try {
      re = new RegExp(condition.regex);
    } catch (err) {
      throw new FilterError(rpath, `invalid regular expression: ${(err as Error).message}`);
    }
    const test: ScalarTest = (s) => s !== null && re.test(s);
    tests.push((v) => anyMatch(v, test));
  }
  return tests;
}

function compileFields(fields: Record<string, FieldCondition>, where: string): EventFilter | undefined {
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
    throw new FilterError(`${where}.fields`, 'must be a map of output field name to conditions');
  }
  const names: string[] = [];
  const tests: ValueTest[][] = [];
  for (const [name, condition] of Object.entries(fields)) {
    const compiled = compileCondition(name, condition, where);
    if (compiled.length === 0) continue;
    names.push(name);
    tests.push(compiled);
  }
  if (names.length === 0) return undefined;
  return (event) => {
    const of = event.output_fields;
    for (let i = 0; i < names.length; i++) {
      const value = fieldValue(of, names[i]!);
      const fieldTests = tests[i]!;
      for (let j = 0; j < fieldTests.length; j++) if (!fieldTests[j]!(value)) return false;
    }
    return true;
  };
}

// ---------------------------------------------------------------------------------------------- CEL

const EMPTY_FIELDS: Record<string, unknown> = Object.freeze(Object.create(null) as Record<string, unknown>);
const EMPTY_TAGS: readonly string[] = Object.freeze([]);

/** The `event` variable of CEL expressions. One instance per compiled filter, refilled per event. */
class CelEvent {
  rule = '';
  priority = '';
  source = '';
  hostname = '';
  tags: readonly string[] = EMPTY_TAGS;
  output = '';
  time = '';
  output_fields: Record<string, unknown> = EMPTY_FIELDS;
}

let celEnvironment: Environment | undefined;

function celEnv(): Environment {
  celEnvironment ??= new Environment({ enableOptionalTypes: true })
    .registerType('eyrie.Event', {
      ctor: CelEvent,
      fields: {
        rule: 'string',
        priority: 'string',
        source: 'string',
        hostname: 'string',
        tags: 'list<string>',
        output: 'string',
        time: 'string',
        output_fields: 'map<string, dyn>',
      },
    })
    .registerVariable('event', 'eyrie.Event');
  return celEnvironment;
}

const INTEGER_TEXT = /^-?\d+$/;

/** ExactNumber is immutable, so its CEL value is computed once however many filters read it. */
const exactCelValues = new WeakMap<ExactNumber, bigint | number>();

function exactToCel(value: ExactNumber): bigint | number {
  let converted = exactCelValues.get(value);
  if (converted === undefined) {
    converted = INTEGER_TEXT.test(value.text) ? BigInt(value.text) : Number(value.text);
    exactCelValues.set(value, converted);
  }
  return converted;
}

/**
 * True for a number the JSON wrote as an integer. The lossless parser leaves a plain number only where
 * its text is String(n), which has no `.` or exponent below 1e21: so beyond 2^53 too
 * (`1700000000000000000`), where Number.isSafeInteger would call it a double.
 */
function writtenAsInteger(value: number): boolean {
  return Number.isInteger(value) && Math.abs(value) < 1e21;
}

function needsCelConversion(value: JsonValue): boolean {
  if (typeof value === 'number') return writtenAsInteger(value);
  if (value === null || typeof value !== 'object') return false;
  if (value instanceof ExactNumber) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (needsCelConversion(value[i]!)) return true;
    return false;
  }
  for (const key in value) if (Object.hasOwn(value, key) && needsCelConversion(value[key]!)) return true;
  return false;
}

/** JSON integers → bigint (CEL int), other numbers → number (CEL double); copies only what changes. */
function toCel(value: JsonValue): unknown {
  if (typeof value === 'number') return writtenAsInteger(value) ? BigInt(value) : value;
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof ExactNumber) return exactToCel(value);
  if (!needsCelConversion(value)) return value;
  if (Array.isArray(value)) return value.map(toCel);
  const out: Record<string, unknown> = {};
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const converted = toCel(value[key]!);
    // A plain assignment to "__proto__" would set the prototype instead of a key.
    if (key === '__proto__')
      Object.defineProperty(out, key, { value: converted, enumerable: true, writable: true });
    else out[key] = converted;
  }
  return out;
}

/** Output fields as CEL sees them (the same object when nothing needs converting). */
export function celOutputFields(fields: JsonObject): Record<string, unknown> {
  return toCel(fields) as Record<string, unknown>;
}

function compileCel(expression: string, where: string, options: FilterOptions): EventFilter {
  const path = `${where}.cel`;
  if (typeof expression !== 'string') throw new FilterError(path, 'must be a string');
  if (expression.trim() === '') throw new FilterError(path, 'is empty');
  let program: ParseResult;
  try {
    program = celEnv().parse(expression);
  } catch (err) {
    throw new FilterError(path, `invalid CEL expression: ${asError(err).message}`);
  }
  const checked = program.check();
  if (!checked.valid) {
    throw new FilterError(path, `invalid CEL expression: ${checked.error?.message ?? 'type check failed'}`);
  }
  if (checked.type !== 'bool' && checked.type !== 'dyn') {
    throw new FilterError(
      path,
      `the expression must return a bool, but returns ${checked.type ?? 'unknown'}`,
    );
  }

  const onError = options.onError;
  const report = (error: Error, event: FalcoEvent): void => {
    if (onError === undefined) return;
    try {
      onError(error, event);
    } catch {
      // an observer must not break routing
    }
  };
  const view = new CelEvent();
  const context = { event: view };
  return (event) => {
    let result: unknown;
    try {
      view.rule = event.rule;
      view.priority = event.priority;
      view.source = event.source;
      view.hostname = event.hostname ?? '';
      view.tags = event.tags;
      view.output = event.output;
      view.time = event.time;
      view.output_fields = celOutputFields(event.output_fields);
      result = program(context);
    } catch (err) {
      const error = asError(err);
      report(new Error(`${path}: ${error.message}`, { cause: error }), event);
      return false;
    } finally {
      // Do not keep the last event alive through the reused view.
      view.tags = EMPTY_TAGS;
      view.output_fields = EMPTY_FIELDS;
      view.output = '';
    }
    if (typeof result === 'boolean') return result;
    report(new Error(`${path}: the expression returned ${describeCelValue(result)}, not a bool`), event);
    return false;
  };
}

function describeCelValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'bigint') return 'an int';
  if (typeof value === 'number') return 'a double';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a map' : `a ${typeof value}`;
}

// ------------------------------------------------------------------------------------------ compile

/**
 * Compiles a destination filter into a predicate. Throws FilterError, naming the setting under
 * `where` (e.g. `destinations[2].filter`), for an invalid regex, CEL expression or setting.
 */
export function compileFilter(
  filter: DestinationFilterConfig | undefined,
  where: string,
  options: FilterOptions = {},
): EventFilter {
  if (filter === undefined || filter === null) return passAll;
  if (typeof filter !== 'object' || Array.isArray(filter)) throw new FilterError(where, 'must be a map');
  for (const key of Object.keys(filter)) {
    if (!FILTER_KEYS.has(key)) {
      throw new FilterError(
        `${where}.${key}`,
        `unknown filter: expected one of ${[...FILTER_KEYS].join(', ')}`,
      );
    }
  }
  const checks: EventFilter[] = [];

  if (filter.minimum_priority !== undefined && filter.minimum_priority !== null) {
    const canonical =
      typeof filter.minimum_priority === 'string' ? parsePriority(filter.minimum_priority) : undefined;
    const minimum = canonical === undefined ? undefined : RANK.get(canonical);
    if (minimum === undefined) {
      throw new FilterError(`${where}.minimum_priority`, `unknown priority "${filter.minimum_priority}"`);
    }
    checks.push((e) => e.rule === TEST_RULE || RANK.get(e.priority)! <= minimum);
  }

  const sources = checkStrings(filter.sources, `${where}.sources`);
  if (sources) {
    const set = new Set(sources);
    checks.push((e) => set.has(e.source));
  }

  const rules = checkStrings(filter.rules, `${where}.rules`);
  if (rules) {
    const matches = compileNameMatcher(rules);
    checks.push((e) => matches(e.rule));
  }

  const excluded = checkStrings(filter.exclude_rules, `${where}.exclude_rules`);
  if (excluded) {
    const matches = compileNameMatcher(excluded);
    checks.push((e) => !matches(e.rule));
  }

  const hostnames = checkStrings(filter.hostnames, `${where}.hostnames`);
  if (hostnames) {
    const matches = compileNameMatcher(hostnames);
    checks.push((e) => e.hostname !== undefined && matches(e.hostname));
  }

  if (filter.tags !== undefined && filter.tags !== null) {
    const tags = filter.tags;
    if (typeof tags !== 'object' || Array.isArray(tags)) {
      throw new FilterError(`${where}.tags`, 'must be a map with any, all and/or none');
    }
    for (const key of Object.keys(tags)) {
      if (!TAG_KEYS.has(key))
        throw new FilterError(`${where}.tags.${key}`, 'unknown key: expected any, all or none');
    }
    const any = checkStrings(tags.any, `${where}.tags.any`);
    if (any) {
      const set = new Set(any);
      checks.push((e) => hasAnyTag(e.tags, set));
    }
    const all = checkStrings(tags.all, `${where}.tags.all`);
    if (all) {
      const required = [...new Set(all)];
      checks.push((e) => {
        for (let i = 0; i < required.length; i++) if (!e.tags.includes(required[i]!)) return false;
        return true;
      });
    }
    const none = checkStrings(tags.none, `${where}.tags.none`);
    if (none) {
      const set = new Set(none);
      checks.push((e) => !hasAnyTag(e.tags, set));
    }
  }

  if (filter.fields !== undefined && filter.fields !== null) {
    const fields = compileFields(filter.fields, where);
    if (fields) checks.push(fields);
  }

  // Last: the most expensive check runs only for events every other criterion admitted.
  if (filter.cel !== undefined && filter.cel !== null) checks.push(compileCel(filter.cel, where, options));

  switch (checks.length) {
    case 0:
      return passAll;
    case 1:
      return checks[0]!;
    case 2: {
      const [a, b] = checks as [EventFilter, EventFilter];
      return (e) => a(e) && b(e);
    }
    default:
      return (e) => {
        for (let i = 0; i < checks.length; i++) if (!checks[i]!(e)) return false;
        return true;
      };
  }
}

const passAll: EventFilter = () => true;

// ----------------------------------------------------------------------------------------- describe

function quoteList(items: readonly Scalar[]): string {
  return `[${items.map((i) => JSON.stringify(i)).join(', ')}]`;
}

function describeCondition(name: string, c: FieldCondition): string[] {
  const field = /^[\w.\-[\]]+$/.test(name) ? name : JSON.stringify(name);
  const parts: string[] = [];
  if (c.exists !== undefined) parts.push(c.exists ? `${field} exists` : `${field} absent`);
  if (c.equals !== undefined) parts.push(`${field} == ${JSON.stringify(c.equals)}`);
  if (c.in !== undefined && c.in.length > 0) parts.push(`${field} in ${quoteList(c.in)}`);
  if (c.not_in !== undefined && c.not_in.length > 0) parts.push(`${field} not in ${quoteList(c.not_in)}`);
  if (c.regex !== undefined) parts.push(`${field} =~ /${c.regex}/`);
  return parts;
}

/**
 * A one-line human summary of a filter for `eyrie check`, e.g.
 * `priority >= Warning and rule in ["Terminal shell*"] and k8s.ns.name not in ["kube-system"]`;
 * `all events` for an empty filter.
 */
export function describeFilter(filter: DestinationFilterConfig | undefined): string {
  if (filter === undefined || filter === null) return 'all events';
  const parts: string[] = [];
  const list = (items: readonly string[] | undefined): items is readonly string[] =>
    items !== undefined && items !== null && items.length > 0;
  if (filter.minimum_priority !== undefined && filter.minimum_priority !== null) {
    parts.push(`priority >= ${filter.minimum_priority}`);
  }
  if (list(filter.sources)) parts.push(`source in ${quoteList(filter.sources)}`);
  if (list(filter.rules)) parts.push(`rule in ${quoteList(filter.rules)}`);
  if (list(filter.exclude_rules)) parts.push(`rule not in ${quoteList(filter.exclude_rules)}`);
  if (list(filter.hostnames)) parts.push(`hostname in ${quoteList(filter.hostnames)}`);
  const tags = filter.tags;
  if (tags) {
    if (list(tags.any)) parts.push(`tags any of ${quoteList(tags.any)}`);
    if (list(tags.all)) parts.push(`tags all of ${quoteList(tags.all)}`);
    if (list(tags.none)) parts.push(`tags none of ${quoteList(tags.none)}`);
  }
  if (filter.fields) {
    for (const [name, condition] of Object.entries(filter.fields))
      parts.push(...describeCondition(name, condition));
  }
  if (filter.cel !== undefined && filter.cel !== null && filter.cel.trim() !== '') {
    parts.push(`cel(${filter.cel.trim().replace(/\s+/g, ' ')})`);
  }
  return parts.length === 0 ? 'all events' : parts.join(' and ');
}
