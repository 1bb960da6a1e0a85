/**
 * The parts of Go's `fmt` (and `strconv.Quote`, `template.HTMLEscapeString`/`JSEscapeString`,
 * `url.QueryEscape`) that the Go-template subset in go-template.ts needs, over JS values:
 *
 * | JS value                         | Go counterpart it prints like                         |
 * |----------------------------------|-------------------------------------------------------|
 * | `null` / `undefined`             | `nil` (`<nil>`)                                       |
 * | string, boolean                  | string, bool                                          |
 * | integer number / ExactNumber int | int (big values exact)                                |
 * | other number / ExactNumber       | float64 for %e %f %g, else its JSON text (json.Number) |
 * | array                            | `[]interface {}` → `[a b]`                            |
 * | plain object                     | `map[string]interface {}` → `map[k:v]`, keys sorted   |
 * | other object                     | a struct → `{v1 v2}`                                  |
 *
 * Falcosidekick decodes event numbers as `json.Number`, whose %v/%s is the original text; we print
 * numbers with %v/%s/%q as their JSON text for the same reason.
 */
import { ExactNumber } from '../event/json.ts';
import { sortUtf8 } from '../event/utf8-order.ts';

/** A Go `map[string]interface{}`: a plain (JSON-like) object. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function isNumeric(v: unknown): v is number | ExactNumber {
  return typeof v === 'number' || v instanceof ExactNumber;
}

/** Map keys in the order Go's fmt and `range` use (sorted by UTF-8 bytes). */
export function sortedKeys(obj: Record<string, unknown>): string[] {
  return sortUtf8(Object.keys(obj));
}

/** The Go type name used in `%!verb(type=value)` and error messages. */
export function typeName(v: unknown): string {
  if (v === null || v === undefined) return '<nil>';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'number':
      return Number.isInteger(v) ? 'int' : 'float64';
    case 'bigint':
      return 'int';
    case 'function':
      return 'func';
    default:
      break;
  }
  if (v instanceof ExactNumber) return 'json.Number';
  if (Array.isArray(v)) return '[]interface {}';
  if (isPlainObject(v)) return 'map[string]interface {}';
  const ctor = (v as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'struct';
}

/** Exact integer value of a number, or undefined when it is not an integer. */
export function integerValue(v: number | ExactNumber): bigint | undefined {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : undefined;
  return v.toBigInt();
}

/** The text a number prints as with %v: its JSON text (ExactNumber keeps the original). */
export function numberText(v: number | ExactNumber): string {
  if (v instanceof ExactNumber) return v.text;
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

// ---------------------------------------------------------------------------------------------
// Printing (Sprint, Sprintln, %v)

/** Go's fmt.Sprint: operands joined, with a space between two operands when neither is a string. */
export function sprint(args: readonly unknown[]): string {
  let out = '';
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (i > 0 && typeof arg !== 'string' && typeof args[i - 1] !== 'string') out += ' ';
    out += formatValue(arg);
  }
  return out;
}

/** Go's fmt.Sprintln: operands always separated by spaces, newline appended. */
export function sprintln(args: readonly unknown[]): string {
  return args.map((a) => formatValue(a)).join(' ') + '\n';
}

/** `%v` of one value. */
export function formatValue(v: unknown): string {
  return formatArg(v, 'v', NO_FLAGS, 0);
}

// ---------------------------------------------------------------------------------------------
// Sprintf

interface Spec {
  minus: boolean;
  plus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  width: number | undefined;
  prec: number | undefined;
}

const NO_FLAGS: Spec = {
  minus: false,
  plus: false,
  sharp: false,
  space: false,
  zero: false,
  width: undefined,
  prec: undefined,
};

const MAX_DEPTH = 100;

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/**
 * Go's fmt.Sprintf for the verbs %v %s %d %q %t %x %X %f %F %e %E %g %G %c %o %O %b %U %T %%, with
 * the flags `- + # 0 space`, width and precision (digits or `*`). Errors print as Go does:
 * `%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA int=1)`, `%!(NOVERB)`.
 */
export function sprintf(format: string, args: readonly unknown[]): string {
  let out = '';
  let argi = 0;
  let i = 0;
  const n = format.length;
  while (i < n) {
    const pct = format.indexOf('%', i);
    if (pct < 0) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, pct);
    i = pct + 1;
    const spec: Spec = { ...NO_FLAGS };
    flags: for (; i < n; i++) {
      switch (format[i]) {
        case '-':
          spec.minus = true;
          spec.zero = false;
          break;
        case '+':
          spec.plus = true;
          break;
        case '#':
          spec.sharp = true;
          break;
        case ' ':
          spec.space = true;
          break;
        case '0':
          spec.zero = !spec.minus;
          break;
        default:
          break flags;
      }
    }
    if (format[i] === '*') {
      i++;
      const w = args[argi++];
      const wi = isNumeric(w) ? integerValue(w) : undefined;
      if (wi === undefined) out += '%!(BADWIDTH)';
      else {
        spec.width = Math.abs(Number(wi));
        if (wi < 0n) {
          spec.minus = true;
          spec.zero = false;
        }
      }
    } else {
      let w = '';
      while (isDigit(format[i])) w += format[i++]!;
      if (w !== '') spec.width = Number(w);
    }
    if (format[i] === '.') {
      i++;
      if (format[i] === '*') {
        i++;
        const p = args[argi++];
        const pi = isNumeric(p) ? integerValue(p) : undefined;
        if (pi === undefined || pi < 0n) out += '%!(BADPREC)';
        else spec.prec = Number(pi);
      } else {
        let p = '';
        while (isDigit(format[i])) p += format[i++]!;
        spec.prec = p === '' ? 0 : Number(p);
      }
    }
    if (i >= n) {
      out += '%!(NOVERB)';
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i)!);
    i += verb.length;
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (argi >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    out += formatArg(args[argi++], verb, spec, 0);
  }
  if (argi < args.length) {
    const extra = args
      .slice(argi)
      .map((a) => (a === null || a === undefined ? '<nil>' : `${typeName(a)}=${formatValue(a)}`));
    out += `%!(EXTRA ${extra.join(', ')})`;
  }
  return out;
}

function runeCount(s: string): number {
  let count = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

/** First `n` code points of s. */
function runePrefix(s: string, n: number): string {
  if (n >= s.length) return s;
  let count = 0;
  let i = 0;
  while (i < s.length && count < n) {
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
    count++;
  }
  return s.slice(0, i);
}

function pad(s: string, spec: Spec): string {
  if (spec.width === undefined) return s;
  const fill = spec.width - runeCount(s);
  if (fill <= 0) return s;
  return spec.minus ? s + ' '.repeat(fill) : ' '.repeat(fill) + s;
}

/** Pads a signed number: zero padding goes between the sign/prefix and the digits. */
function padNumber(sign: string, body: string, spec: Spec, allowZero: boolean): string {
  if (spec.width !== undefined && spec.zero && !spec.minus && allowZero) {
    const fill = spec.width - sign.length - body.length;
    if (fill > 0) return sign + '0'.repeat(fill) + body;
    return sign + body;
  }
  return pad(sign + body, spec);
}

function badVerb(verb: string, v: unknown): string {
  if (v === null || v === undefined) return `%!${verb}(<nil>)`;
  return `%!${verb}(${typeName(v)}=${formatValue(v)})`;
}

function formatArg(v: unknown, verb: string, spec: Spec, depth: number): string {
  if (verb === 'T') return pad(typeName(v), spec);
  if (v === null || v === undefined) {
    // Inside a container a nil interface prints as <nil> whatever the verb, as in Go.
    return verb === 'v' || depth > 0 ? pad('<nil>', spec) : badVerb(verb, v);
  }
  if (depth > MAX_DEPTH) return '...';
  switch (typeof v) {
    case 'string':
      return formatString(v, verb, spec);
    case 'boolean':
      return verb === 'v' || verb === 't' ? pad(String(v), spec) : badVerb(verb, v);
    case 'number':
      return formatNumber(v, verb, spec);
    case 'bigint':
      return formatNumber(new ExactNumber(v.toString()), verb, spec);
    case 'function':
      return verb === 'v' ? pad('<func>', spec) : badVerb(verb, v);
    default:
      break;
  }
  if (v instanceof ExactNumber) return formatNumber(v, verb, spec);
  if (v instanceof Date)
    return formatString(Number.isNaN(v.getTime()) ? 'Invalid Date' : v.toISOString(), verb, spec);
  if (Array.isArray(v)) {
    return `[${v.map((e: unknown) => formatArg(e, verb, spec, depth + 1)).join(' ')}]`;
  }
  if (isPlainObject(v)) {
    const parts = sortedKeys(v).map(
      (k) => `${formatArg(k, verb, spec, depth + 1)}:${formatArg(v[k], verb, spec, depth + 1)}`,
    );
    return `map[${parts.join(' ')}]`;
  }
  const values = Object.values(v).map((e: unknown) => formatArg(e, verb, spec, depth + 1));
  return `{${values.join(' ')}}`;
}

function formatString(s: string, verb: string, spec: Spec): string {
  switch (verb) {
    case 'v':
    case 's':
      return pad(spec.prec === undefined ? s : runePrefix(s, spec.prec), spec);
    case 'q': {
      const t = spec.prec === undefined ? s : runePrefix(s, spec.prec);
      if (spec.sharp && canBackquote(t)) return pad('`' + t + '`', spec);
      return pad(quote(t, spec.plus), spec);
    }
    case 'x':
    case 'X': {
      let bytes = Buffer.from(s.toWellFormed(), 'utf8');
      if (spec.prec !== undefined && spec.prec < bytes.length) bytes = bytes.subarray(0, spec.prec);
      const parts: string[] = [];
      for (const b of bytes) {
        let h = b.toString(16).padStart(2, '0');
        if (verb === 'X') h = h.toUpperCase();
        if (spec.sharp && (spec.space || parts.length === 0)) h = (verb === 'X' ? '0X' : '0x') + h;
        parts.push(h);
      }
      return pad(parts.join(spec.space ? ' ' : ''), spec);
    }
    default:
      return badVerb(verb, s);
  }
}

function formatNumber(v: number | ExactNumber, verb: string, spec: Spec): string {
  const big = integerValue(v);
  switch (verb) {
    case 'v':
      if (big !== undefined && typeof v === 'number' && Number.isSafeInteger(v))
        return formatInteger(big, 'd', spec);
      return padNumericText(numberText(v), spec);
    case 's':
      return pad(numberText(v), spec);
    case 'q':
      return pad(quote(numberText(v), spec.plus), spec);
    case 'd':
    case 'b':
    case 'o':
    case 'O':
    case 'x':
    case 'X':
    case 'c':
    case 'U':
      return big === undefined ? badVerb(verb, v) : formatInteger(big, verb, spec);
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
      return formatFloat(Number(v), verb, spec);
    default:
      return badVerb(verb, v);
  }
}

/** %v of a JSON number text with width / zero padding. */
function padNumericText(text: string, spec: Spec): string {
  const neg = text.startsWith('-');
  const body = neg ? text.slice(1) : text;
  const sign = neg ? '-' : spec.plus ? '+' : spec.space ? ' ' : '';
  return padNumber(sign, body, spec, /^[0-9]/.test(body));
}

function formatInteger(value: bigint, verb: string, spec: Spec): string {
  if (verb === 'c') {
    const cp =
      value >= 0n && value <= 0x10ffffn && !(value >= 0xd800n && value <= 0xdfffn) ? Number(value) : 0xfffd;
    return pad(String.fromCodePoint(cp), spec);
  }
  if (verb === 'U') {
    let hex = (value < 0n ? -value : value).toString(16).toUpperCase();
    hex = hex.padStart(Math.max(4, spec.prec ?? 0), '0');
    return pad(`${value < 0n ? '-' : ''}U+${hex}`, spec);
  }
  const neg = value < 0n;
  const abs = neg ? -value : value;
  const base = verb === 'b' ? 2 : verb === 'o' || verb === 'O' ? 8 : verb === 'x' || verb === 'X' ? 16 : 10;
  let digits = abs.toString(base);
  if (verb === 'X') digits = digits.toUpperCase();
  if (spec.prec !== undefined) {
    digits = spec.prec === 0 && abs === 0n ? '' : digits.padStart(spec.prec, '0');
  }
  let prefix = '';
  if (verb === 'O') prefix = '0o';
  else if (spec.sharp) {
    if (verb === 'x') prefix = '0x';
    else if (verb === 'X') prefix = '0X';
    else if (verb === 'b') prefix = '0b';
    else if (verb === 'o' && !digits.startsWith('0')) prefix = '0';
  }
  const sign = neg ? '-' : spec.plus ? '+' : spec.space ? ' ' : '';
  return padNumber(sign + prefix, digits, spec, spec.prec === undefined);
}

interface Decimal {
  /** Significant digits, no leading zeros ('0' for zero). */
  digits: string;
  /** Position of the decimal point relative to the first digit. */
  dp: number;
}

/** The exact decimal value of a finite x > 0 (every double has a finite decimal expansion). */
function exactDecimal(x: number): Decimal {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const expBits = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp: number;
  if (expBits === 0) exp = -1074;
  else {
    mantissa |= 1n << 52n;
    exp = expBits - 1075;
  }
  if (exp >= 0) {
    const digits = (mantissa << BigInt(exp)).toString();
    return { digits, dp: digits.length };
  }
  // m × 2^-k = m × 5^k / 10^k
  const digits = (mantissa * 5n ** BigInt(-exp)).toString();
  return { digits, dp: digits.length + exp };
}

/** Keeps the first `keep` digits, rounding half to even on the exact value, as Go's strconv does. */
function roundDecimal(d: Decimal, keep: number): Decimal {
  const { digits } = d;
  if (keep >= digits.length) return d;
  if (keep < 0) return { digits: '0', dp: d.dp };
  const next = digits.charCodeAt(keep) - 48;
  const prevOdd = keep > 0 && (digits.charCodeAt(keep - 1) - 48) % 2 === 1;
  const up = next > 5 || (next === 5 && (/[1-9]/.test(digits.slice(keep + 1)) || prevOdd));
  let kept = digits.slice(0, keep);
  let dp = d.dp;
  if (up) {
    let i = kept.length - 1;
    while (i >= 0 && kept[i] === '9') i--;
    if (i < 0) {
      kept = '1' + '0'.repeat(kept.length);
      dp++;
    } else {
      kept = kept.slice(0, i) + String.fromCharCode(kept.charCodeAt(i) + 1) + '0'.repeat(kept.length - i - 1);
    }
  }
  return kept === '' ? { digits: '0', dp } : { digits: kept, dp };
}

/** Decimal digits of x (finite, ≥ 0): shortest round-trip when `significant` is undefined. */
function decimalDigits(x: number, significant: number | undefined): Decimal {
  if (x === 0) return { digits: '0', dp: 1 };
  if (significant === undefined) {
    const [mantissa, exponent] = x.toExponential().split('e') as [string, string];
    return { digits: mantissa.replace('.', ''), dp: Number(exponent) + 1 };
  }
  return roundDecimal(exactDecimal(x), significant);
}

function fmtE(digits: string, dp: number, prec: number, upper: boolean): string {
  let s = digits[0] ?? '0';
  if (prec > 0) s += '.' + digits.slice(1, prec + 1).padEnd(prec, '0');
  const exp = digits === '0' || digits === '' ? 0 : dp - 1;
  const expText = String(Math.abs(exp)).padStart(2, '0');
  return `${s}${upper ? 'E' : 'e'}${exp < 0 ? '-' : '+'}${expText}`;
}

function fmtF(digits: string, dp: number, prec: number): string {
  let intPart: string;
  if (dp > 0) intPart = digits.slice(0, dp).padEnd(dp, '0');
  else intPart = '0';
  if (prec <= 0) return intPart;
  let frac = '';
  for (let i = 0; i < prec; i++) {
    const idx = dp + i;
    frac += digits[idx] ?? '0';
  }
  return `${intPart}.${frac}`;
}

function formatFloat(x: number, verb: string, spec: Spec): string {
  const neg = x < 0 || Object.is(x, -0);
  const sign = neg ? '-' : spec.plus ? '+' : spec.space ? ' ' : '';
  if (!Number.isFinite(x)) {
    const text = Number.isNaN(x) ? 'NaN' : 'Inf';
    const s = Number.isNaN(x)
      ? spec.plus
        ? '+'
        : spec.space
          ? ' '
          : ''
      : neg
        ? '-'
        : spec.space && !spec.plus
          ? ' '
          : '+';
    return pad(s + text, spec);
  }
  const abs = Math.abs(x);
  const upper = verb === 'E' || verb === 'G';
  let body: string;
  switch (verb) {
    case 'f':
    case 'F': {
      const prec = spec.prec ?? 6;
      const d = abs === 0 ? { digits: '0', dp: 1 } : exactDecimal(abs);
      const r = roundDecimal(d, d.dp + prec);
      body = fmtF(r.digits, r.dp, prec);
      break;
    }
    case 'e':
    case 'E': {
      const prec = spec.prec ?? 6;
      const d = decimalDigits(abs, prec + 1);
      body = fmtE(d.digits, d.dp, prec, upper);
      break;
    }
    default: {
      // %g: Go's strconv 'g' (shortest when no precision; %e when the exponent is < -4 or ≥ precision).
      const shortest = spec.prec === undefined;
      let prec = shortest ? -1 : spec.prec === 0 ? 1 : spec.prec!;
      const d = decimalDigits(abs, shortest ? undefined : prec);
      const digits = d.digits.replace(/(?<=.)0+$/, '');
      const nd = digits.length;
      if (shortest) prec = nd;
      let eprec = prec;
      if (eprec > nd && nd >= d.dp) eprec = nd;
      if (shortest) eprec = 6;
      const exp = abs === 0 ? 0 : d.dp - 1;
      if (exp < -4 || exp >= eprec) {
        body = fmtE(digits, d.dp, Math.min(prec, nd) - 1, upper);
      } else {
        if (prec > d.dp) prec = nd;
        body = fmtF(digits, d.dp, Math.max(prec - d.dp, 0));
      }
      break;
    }
  }
  return padNumber(sign, body, spec, true);
}

// ---------------------------------------------------------------------------------------------
// Quoting and escaping

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isPrint(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7f;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return PRINTABLE.test(String.fromCodePoint(cp));
}

function hex(cp: number, digits: number): string {
  return cp.toString(16).padStart(digits, '0');
}

/** Go's strconv.Quote (asciiOnly: strconv.QuoteToASCII, the `%+q` form). */
export function quote(s: string, asciiOnly = false): string {
  let out = '"';
  for (let i = 0; i < s.length;) {
    let cp = s.codePointAt(i)!;
    i += cp > 0xffff ? 2 : 1;
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // a lone surrogate: Go sees invalid UTF-8
    if (cp === 0x22) out += '\\"';
    else if (cp === 0x5c) out += '\\\\';
    else if (isPrint(cp) && (!asciiOnly || cp < 0x80)) out += String.fromCodePoint(cp);
    else if (cp === 7) out += '\\a';
    else if (cp === 8) out += '\\b';
    else if (cp === 12) out += '\\f';
    else if (cp === 10) out += '\\n';
    else if (cp === 13) out += '\\r';
    else if (cp === 9) out += '\\t';
    else if (cp === 11) out += '\\v';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + hex(cp, 2);
    else if (cp < 0x10000) out += '\\u' + hex(cp, 4);
    else out += '\\U' + hex(cp, 8);
  }
  return out + '"';
}

function canBackquote(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0x60 || cp === 0xfeff || (cp < 0x20 && cp !== 9) || cp === 0x7f) return false;
    if (cp >= 0xd800 && cp <= 0xdfff) return false;
  }
  return true;
}

const HTML_SPECIAL = /[<>&'"\0]/g;
const HTML_ESCAPES: Record<string, string> = {
  '<': '&lt;',
  '>': '&gt;',
  '&': '&amp;',
  "'": '&#39;',
  '"': '&#34;',
  '\0': '\uFFFD',
};

/** Go's template.HTMLEscapeString. */
export function htmlEscape(s: string): string {
  return s.replace(HTML_SPECIAL, (c) => HTML_ESCAPES[c]!);
}

/** Go's template.JSEscapeString. */
export function jsEscape(s: string): string {
  let out = '';
  for (let i = 0; i < s.length;) {
    let cp = s.codePointAt(i)!;
    const ch = s.slice(i, i + (cp > 0xffff ? 2 : 1));
    i += ch.length;
    switch (cp) {
      case 0x5c:
        out += '\\\\';
        continue;
      case 0x27:
        out += "\\'";
        continue;
      case 0x22:
        out += '\\"';
        continue;
      case 0x3c:
        out += '\\u003C';
        continue;
      case 0x3e:
        out += '\\u003E';
        continue;
      case 0x26:
        out += '\\u0026';
        continue;
      case 0x3d:
        out += '\\u003D';
        continue;
      default:
        break;
    }
    if (cp < 0x20) out += '\\u00' + hex(cp, 2).toUpperCase();
    else if (cp < 0x80) out += ch;
    else {
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
      out += isPrint(cp) ? String.fromCodePoint(cp) : '\\u' + hex(cp, 4).toUpperCase();
    }
  }
  return out;
}

/** Go's url.QueryEscape. */
export function queryEscape(s: string): string {
  let out = '';
  for (const b of Buffer.from(s.toWellFormed(), 'utf8')) {
    if (
      (b >= 0x30 && b <= 0x39) ||
      (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d ||
      b === 0x2e ||
      b === 0x5f ||
      b === 0x7e
    ) {
      out += String.fromCharCode(b);
    } else if (b === 0x20) out += '+';
    else out += '%' + hex(b, 2).toUpperCase();
  }
  return out;
}
