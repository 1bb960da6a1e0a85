/**
 * Lossless JSON for Falco events.
 *
 * `output_fields["evt.time"]` is a 64-bit nanosecond integer (≈1.8e18) that `JSON.parse` rounds, and
 * Falcosidekick re-emits every number with its original text (Go `json.Number`). We keep such numbers
 * as {@link ExactNumber} so they are re-emitted byte for byte.
 *
 * Hand-written rather than `lossless-json`: that library's pure-JS parser measured 10.4 µs per 730-byte
 * event against 2.8 µs for this scan + native `JSON.parse` (1.7 µs alone), and ingest speed is a target.
 * The scan only rewrites number tokens whose text does not survive a `Number` round trip into marked
 * strings, lets V8 parse, then swaps the marks back for ExactNumber instances.
 */

// A per-process random mark, so a client cannot forge a marked string that turns into a number.
const MARK = `\uE000${Math.random().toString(36).slice(2, 10)}#`;

/** A JSON number kept as its original text because a JS number would change it. */
export class ExactNumber {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  /** The nearest JS number (lossy for integers beyond 2^53). */
  valueOf(): number {
    return Number(this.text);
  }
  toString(): string {
    return this.text;
  }
  /**
   * JSON.stringify calls this only for ExactNumber values (cheaper than a replacer on every key): a
   * marked string that stringifyJson turns back into the bare number text.
   */
  toJSON(): string {
    return MARK + this.text;
  }
  /** Exact value when the text is an integer. */
  toBigInt(): bigint | undefined {
    return /^-?\d+$/.test(this.text) ? BigInt(this.text) : undefined;
  }
}

export type JsonValue =
  string | number | boolean | null | ExactNumber | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const QUOTE = 34;
const BACKSLASH = 92;
const MINUS = 45;
const DOT = 46;

function isNumberChar(c: number): boolean {
  // digits, '.', 'e', 'E', '+', '-'
  return (c >= 48 && c <= 57) || c === DOT || c === 101 || c === 69 || c === 43 || c === MINUS;
}

/** Deeper documents are refused: every later stage (serializers, templates) may recurse over them. */
export const MAX_DEPTH = 64;
const OPEN_BRACE = 123;
const OPEN_BRACKET = 91;
const CLOSE_BRACE = 125;
const CLOSE_BRACKET = 93;

/**
 * Wraps number tokens that a JS number would alter in marked strings; returns undefined if none.
 * Also enforces MAX_DEPTH, since it walks every structural character anyway.
 */
function markInexactNumbers(text: string): { text: string; count: number } | undefined {
  let parts: string[] | undefined;
  let last = 0;
  let i = 0;
  let depth = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > MAX_DEPTH) throw new SyntaxError(`JSON nested deeper than ${MAX_DEPTH} levels`);
      i++;
      continue;
    }
    if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      i++;
      continue;
    }
    if (c === QUOTE) {
      // Jump to the closing quote, skipping escaped ones.
      let j = text.indexOf('"', i + 1);
      while (j > 0) {
        let k = j - 1;
        let backslashes = 0;
        while (text.charCodeAt(k) === BACKSLASH) {
          backslashes++;
          k--;
        }
        if ((backslashes & 1) === 0) break;
        j = text.indexOf('"', j + 1);
      }
      if (j < 0) return undefined; // unterminated string: JSON.parse will report it
      i = j + 1;
      continue;
    }
    if ((c >= 48 && c <= 57) || c === MINUS) {
      let j = i + 1;
      let simple = true; // only digits so far
      while (j < n) {
        const d = text.charCodeAt(j);
        if (!isNumberChar(d)) break;
        if (d < 48 || d > 57) simple = false;
        j++;
      }
      const digits = j - i - (c === MINUS ? 1 : 0);
      if (!simple || digits >= 16 || (c === MINUS && text.charCodeAt(i + 1) === 48)) {
        const token = text.slice(i, j);
        if (String(Number(token)) !== token) {
          // Validate here what JSON.parse will only see as a string ("1.2.3" is not a number).
          if (!JSON_NUMBER.test(token)) throw new SyntaxError(`Invalid number ${token.slice(0, 40)} in JSON`);
          parts ??= [];
          parts.push(text.slice(last, i), '"', MARK, token, '"');
          last = j;
        }
      }
      i = j;
      continue;
    }
    i++;
  }
  if (parts === undefined) return undefined;
  parts.push(text.slice(last));
  // Each mark added 5 parts.
  return { text: parts.join(''), count: (parts.length - 1) / 5 };
}

/** Swaps marked strings for ExactNumber in place; stops as soon as `left.count` marks are restored. */
function restoreMarks(value: unknown, left: { count: number }): unknown {
  if (typeof value === 'string') {
    if (!value.startsWith(MARK)) return value;
    left.count--;
    return new ExactNumber(value.slice(MARK.length));
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length && left.count > 0; i++) value[i] = restoreMarks(value[i], left);
  } else if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key in obj) {
      if (left.count === 0) break;
      obj[key] = restoreMarks(obj[key], left);
    }
  }
  return value;
}

/**
 * `JSON.parse` that keeps number text a JS number would change (big integers, `1.0`, `1e3`, `-0`), and
 * reads a lone surrogate escape (`"\ud800"`) as U+FFFD, as Go's decoder does, in keys too: two keys
 * that differ only there are one key, the last value winning, as in Falcosidekick.
 */
export function parseJson(text: string): JsonValue {
  const marked = markInexactNumbers(text);
  // The mark is random per process, so only our own rewrites carry it.
  const value =
    marked === undefined
      ? (JSON.parse(text) as JsonValue)
      : (restoreMarks(JSON.parse(marked.text), { count: marked.count }) as JsonValue);
  return SURROGATE_ESCAPE.test(text) ? replaceLoneSurrogates(value) : value;
}

/** A `\uD800`–`\uDFFF` escape: the only way a lone surrogate gets into decoded UTF-8 text. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

function replaceLoneSurrogates(value: JsonValue): JsonValue {
  if (typeof value === 'string') return value.toWellFormed();
  if (Array.isArray(value)) return value.map(replaceLoneSurrogates);
  if (value === null || typeof value !== 'object' || value instanceof ExactNumber) return value;
  const out: { [key: string]: JsonValue } = {};
  for (const [key, item] of Object.entries(value)) {
    // Defined, not assigned: a "__proto__" key stays an own property, as JSON.parse makes it.
    Object.defineProperty(out, key.toWellFormed(), {
      value: replaceLoneSurrogates(item),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

const MARKED = new RegExp(`"${MARK}([^"]*)"`, 'g');

/** `JSON.stringify` that writes ExactNumber values as their original number text. */
export function stringifyJson(value: unknown, hasExact = true): string {
  if (!hasExact) return JSON.stringify(value);
  const text = JSON.stringify(value);
  return text.includes(MARK) ? text.replace(MARKED, '$1') : text;
}

/** True when the value tree holds at least one ExactNumber (lets writers skip the replacer). */
export function containsExact(value: unknown): boolean {
  if (value instanceof ExactNumber) return true;
  if (Array.isArray(value)) return value.some(containsExact);
  if (value !== null && typeof value === 'object') return Object.values(value).some(containsExact);
  return false;
}
