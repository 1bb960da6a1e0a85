/**
 * # Go `text/template`, the subset Falcosidekick users write
 *
 * Falcosidekick runs `templatedfields` (with the event's `output_fields` map as data) and the chat
 * outputs' `messageformat` (with the event struct as data) through Go's text/template. This module
 * parses and runs the same templates in JS. `compileTemplate` throws a {@link TemplateError} with a
 * `line:column` (1-based) for anything it does not support, so a bad template is a startup error and
 * never a surprise at runtime.
 *
 * ## Supported
 *
 * - Text and `{{ action }}`s; `{{-` trims the whitespace before the action and `-}}` the whitespace
 *   after it (the marker needs a space: `{{- 3}}` trims, `{{-3}}` is the number -3). Actions may span
 *   lines. Comments `{{/* … *\/}}` (also `{{- /* … *\/ -}}`).
 * - Operands: `.` (dot), field chains `.a.b` (map key lookup: `.k8s.ns` reads key `k8s`, then `ns`;
 *   keys with dots need `index`), variables `$` / `$x` / `$x.field`, `(pipeline)` and
 *   `(pipeline).field`, strings `"…"` (Go escapes `\n \t \\ \" \xHH \ooo \uHHHH \UHHHHHHHH …`) and
 *   raw strings `` `…` ``, numbers (`42`, `-1`, `0x1F`, `0o17`, `0b101`, `1_000`, `1.5`, `1e3`),
 *   character constants (`'a'` → 97), `true`, `false`, `nil`.
 * - Commands and pipelines `a | b c` (the piped value becomes the last argument of the next command).
 * - Variables: `{{ $x := pipeline }}` declares, `{{ $x = pipeline }}` assigns; scoped to the enclosing
 *   `if`/`with`/`range` (or the template).
 * - `{{if p}} … {{else if p}} … {{else}} … {{end}}`; `{{with p}} … {{else with p}} … {{else}} … {{end}}`;
 *   `{{range p}} … {{else}} … {{end}}` with `$v :=` or `$i, $v :=`, over arrays, maps (sorted keys) and
 *   integers (`range 3` → 0 1 2); `{{break}}` and `{{continue}}` inside `range`.
 * - Functions: `and`, `or` (short-circuit, return the deciding argument), `not`, `eq` (multi-argument:
 *   `eq a b c` is a==b || a==c), `ne`, `lt`, `le`, `gt`, `ge`, `len`, `index` (maps, arrays and strings,
 *   several keys), `slice`, `print`, `printf`, `println`, `html`, `js`, `urlquery`.
 *   printf verbs: `%v %s %d %q %t %x %X %f %F %e %E %g %G %c %o %O %b %U %T %%` with flags `- + # 0 space`,
 *   width and precision.
 * - Go truthiness: false, 0, "", nil, empty arrays and maps are false.
 * - A missing map key is "no value": it prints `<no value>`, passes as `nil` to functions, and
 *   `index` of a missing key returns nil, so `{{ or (index . "x") "default" }}` works. JSON `null` in
 *   the data behaves like Go's nil interface (prints `<no value>` in an action, `<nil>` inside `print`).
 * - Printing follows fmt's `%v`: strings raw, numbers as their JSON text (an ExactNumber prints its exact
 *   text), `true`/`false`, nil `<nil>`, arrays `[a b]`, maps `map[k:v k2:v2]` with sorted keys.
 * - Data: plain objects are Go maps; other objects are "structs" (a missing field is an error); a JS
 *   function found as a field is called like a Go method, with the command's arguments.
 *
 * ## Not supported (a compile error)
 *
 * `define`, `template`, `block`, the `call` function, complex numbers, hex floats, custom delimiters.
 *
 * ## Deliberate differences from Go
 *
 * - Falcosidekick decodes numbers as `json.Number` (a string type). Here numbers are numbers: `eq` and
 *   `lt` compare them numerically and `%d` works, where Go reports an error; `%v`, `%s` and `%q` still
 *   print the JSON text, and `eq` of a number and a string compares the number's text, as Go would.
 *   Truthiness differs for a data value 0 (`json.Number("0")` is a non-empty string, true in Go).
 * - A float literal prints as its JSON text (`{{ 1e6 }}` → `1000000`, Go `1e+06`); `%g` is Go's.
 * - Int and float literals are not distinguished, so `eq 1 1.0` is true (Go: incompatible types).
 * - Argument-count errors are runtime errors as in Go; assigning an undeclared variable and using a
 *   variable outside its scope are compile errors (Go reports some of these only when executed).
 */
import { ExactNumber } from '../event/json.ts';
import { compareUtf8 } from '../event/utf8-order.ts';
import {
  formatValue,
  htmlEscape,
  integerValue,
  isNumeric,
  isPlainObject,
  jsEscape,
  numberText,
  queryEscape,
  sortedKeys,
  sprint,
  sprintf,
  sprintln,
  typeName,
} from './go-fmt.ts';

/** A template that does not compile, or fails while running. */
export class TemplateError extends Error {
  readonly templateName: string;
  /** 1-based position in the template source. */
  readonly line: number;
  readonly column: number;
  /** The problem without the location prefix. */
  readonly reason: string;
  /** Runtime errors: what the template wrote before failing (Falcosidekick keeps it); '' otherwise. */
  readonly partialOutput: string;

  constructor(
    templateName: string,
    line: number,
    column: number,
    reason: string,
    message: string,
    partialOutput = '',
  ) {
    super(message);
    this.name = 'TemplateError';
    this.templateName = templateName;
    this.line = line;
    this.column = column;
    this.reason = reason;
    this.partialOutput = partialOutput;
  }
}

export interface Template {
  readonly name: string;
  readonly source: string;
  /** Runs the template; throws TemplateError (with `partialOutput`) when execution fails. */
  execute(data: unknown): string;
}

// =============================================================================================
// Lexer

type TokenKind =
  | 'text'
  | 'open' // {{
  | 'close' // }}
  | 'space'
  | 'ident'
  | 'keyword'
  | 'field'
  | 'var'
  | 'string'
  | 'number'
  | 'bool'
  | 'nil'
  | 'dot'
  | 'lparen'
  | 'rparen'
  | 'pipe'
  | 'declare'
  | 'assign'
  | 'comma'
  | 'char'
  | 'eof';

interface Token {
  kind: TokenKind;
  /** Source text (for text tokens: the text after trimming). */
  text: string;
  pos: number;
  end: number;
  value?: unknown;
}

const KEYWORDS = new Set([
  'if',
  'else',
  'end',
  'range',
  'with',
  'define',
  'template',
  'block',
  'break',
  'continue',
]);

/** Internal: a compile error at a source offset (turned into TemplateError with line:column). */
class ParseFailure extends Error {
  readonly pos: number;
  constructor(pos: number, message: string) {
    super(message);
    this.pos = pos;
  }
}

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\r' || c === '\n';
}

const ALNUM = /[\p{L}\p{Nd}_]/u;

function isAlnumAt(src: string, p: number): number {
  if (p >= src.length) return 0;
  const c = src.charCodeAt(p);
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f)
    return 1;
  if (c < 0x80) return 0;
  const cp = src.codePointAt(p)!;
  const ch = String.fromCodePoint(cp);
  return ALNUM.test(ch) ? ch.length : 0;
}

function scanAlnum(src: string, p: number): number {
  for (;;) {
    const w = isAlnumAt(src, p);
    if (w === 0) return p;
    p += w;
  }
}

/** Length of a right delimiter at p (`}}` = 2, ` -}}` = 4) and whether it trims; 0 when none. */
function rightDelimAt(src: string, p: number): { len: number; trim: boolean } | undefined {
  if (src.startsWith('}}', p)) return { len: 2, trim: false };
  if (isSpace(src[p]) && src[p + 1] === '-' && src.startsWith('}}', p + 2)) return { len: 4, trim: true };
  return undefined;
}

function atTerminator(src: string, p: number): boolean {
  const c = src[p];
  return (
    c === undefined ||
    isSpace(c) ||
    c === '.' ||
    c === ',' ||
    c === '|' ||
    c === ':' ||
    c === ')' ||
    c === '(' ||
    c === '=' ||
    c === '}'
  );
}

function trimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length && isSpace(s[i])) i++;
  return s.slice(i);
}

function trimRightSpace(s: string): string {
  let i = s.length;
  while (i > 0 && isSpace(s[i - 1])) i--;
  return s.slice(0, i);
}

function lex(src: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  let trimNext = false;
  for (;;) {
    const open = src.indexOf('{{', pos);
    let text = src.slice(pos, open < 0 ? src.length : open);
    if (trimNext) text = trimLeftSpace(text);
    if (open < 0) {
      if (text !== '') tokens.push({ kind: 'text', text, pos, end: src.length });
      break;
    }
    let p = open + 2;
    if (src[p] === '-' && isSpace(src[p + 1])) {
      text = trimRightSpace(text);
      p += 2;
    }
    if (text !== '') tokens.push({ kind: 'text', text, pos, end: open });
    if (src.startsWith('/*', p)) {
      const close = src.indexOf('*/', p + 2);
      if (close < 0) throw new ParseFailure(open, 'unclosed comment');
      const delim = rightDelimAt(src, close + 2);
      if (!delim) throw new ParseFailure(close + 2, 'comment ends before closing delimiter');
      pos = close + 2 + delim.len;
      trimNext = delim.trim;
      continue;
    }
    tokens.push({ kind: 'open', text: '{{', pos: open, end: p });
    const result = lexAction(src, p, open, tokens);
    pos = result.pos;
    trimNext = result.trim;
  }
  tokens.push({ kind: 'eof', text: '', pos: src.length, end: src.length });
  return tokens;
}

/** Index just past the closing `quote` of a quoted literal opening at `p` (escapes skipped, one line). */
function endOfQuoted(src: string, p: number, quote: string, start: number, unterminated: string): number {
  p++;
  for (;;) {
    const d = src[p];
    if (d === undefined || d === '\n') throw new ParseFailure(start, unterminated);
    if (d === '\\') {
      p += 2;
      continue;
    }
    p++;
    if (d === quote) return p;
  }
}

function lexAction(src: string, p: number, open: number, tokens: Token[]): { pos: number; trim: boolean } {
  let depth = 0;
  const push = (kind: TokenKind, start: number, end: number, value?: unknown) => {
    const token: Token = { kind, text: src.slice(start, end), pos: start, end };
    if (value !== undefined) token.value = value;
    tokens.push(token);
  };
  for (;;) {
    const delim = rightDelimAt(src, p);
    if (delim) {
      if (depth > 0) throw new ParseFailure(p, 'unclosed left paren');
      push('close', p, p + delim.len);
      return { pos: p + delim.len, trim: delim.trim };
    }
    if (p >= src.length) throw new ParseFailure(open, 'unclosed action');
    const c = src[p]!;
    const start = p;
    if (isSpace(c)) {
      while (p < src.length && isSpace(src[p]) && !rightDelimAt(src, p)?.trim) p++;
      push('space', start, p);
      continue;
    }
    switch (c) {
      case '=':
        push('assign', p, ++p);
        continue;
      case ':':
        if (src[p + 1] !== '=') throw new ParseFailure(p, 'expected :=');
        p += 2;
        push('declare', start, p);
        continue;
      case '|':
        push('pipe', p, ++p);
        continue;
      case ',':
        push('comma', p, ++p);
        continue;
      case '(':
        depth++;
        push('lparen', p, ++p);
        continue;
      case ')':
        depth--;
        if (depth < 0) throw new ParseFailure(p, 'unexpected right paren');
        push('rparen', p, ++p);
        continue;
      case '"': {
        p = endOfQuoted(src, p, '"', start, 'unterminated quoted string');
        push('string', start, p, unquote(src.slice(start + 1, p - 1), '"', start));
        continue;
      }
      case '`': {
        const close = src.indexOf('`', p + 1);
        if (close < 0) throw new ParseFailure(start, 'unterminated raw quoted string');
        p = close + 1;
        push('string', start, p, src.slice(start + 1, close).replaceAll('\r', ''));
        continue;
      }
      case "'": {
        p = endOfQuoted(src, p, "'", start, 'unterminated character constant');
        const value = unquote(src.slice(start + 1, p - 1), "'", start);
        const cp = value.codePointAt(0);
        if (cp === undefined || value.length !== (cp > 0xffff ? 2 : 1)) {
          throw new ParseFailure(start, `malformed character constant: ${src.slice(start, p)}`);
        }
        push('number', start, p, cp);
        continue;
      }
      case '$': {
        p = scanAlnum(src, p + 1);
        if (!atTerminator(src, p)) throw new ParseFailure(p, `bad character ${describeChar(src, p)}`);
        push('var', start, p);
        continue;
      }
      case '.': {
        if (src[p + 1] !== undefined && src[p + 1]! >= '0' && src[p + 1]! <= '9') {
          p = lexNumber(src, p, push);
          continue;
        }
        p = scanAlnum(src, p + 1);
        if (!atTerminator(src, p)) throw new ParseFailure(p, `bad character ${describeChar(src, p)}`);
        push(p === start + 1 ? 'dot' : 'field', start, p);
        continue;
      }
      default:
        break;
    }
    if (c === '+' || c === '-' || (c >= '0' && c <= '9')) {
      p = lexNumber(src, p, push);
      continue;
    }
    if (isAlnumAt(src, p) > 0) {
      p = scanAlnum(src, p);
      if (!atTerminator(src, p)) throw new ParseFailure(p, `bad character ${describeChar(src, p)}`);
      const word = src.slice(start, p);
      if (word === 'true' || word === 'false') push('bool', start, p, word === 'true');
      else if (word === 'nil') push('nil', start, p);
      else if (KEYWORDS.has(word)) push('keyword', start, p);
      else push('ident', start, p);
      continue;
    }
    const code = src.codePointAt(p)!;
    if (code < 0x7f && code > 0x20) {
      push('char', p, ++p);
      continue;
    }
    throw new ParseFailure(p, `unrecognized character in action: ${describeChar(src, p)}`);
  }
}

function describeChar(src: string, p: number): string {
  const cp = src.codePointAt(p);
  if (cp === undefined) return 'EOF';
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')} '${String.fromCodePoint(cp)}'`;
}

function lexNumber(
  src: string,
  p: number,
  push: (kind: TokenKind, start: number, end: number, value?: unknown) => void,
): number {
  const start = p;
  if (src[p] === '+' || src[p] === '-') p++;
  let digits = /[0-9_]/;
  let decimal = true;
  if (src[p] === '0' && /[xXoObB]/.test(src[p + 1] ?? '')) {
    const base = src[p + 1]!.toLowerCase();
    digits = base === 'x' ? /[0-9a-fA-F_]/ : base === 'o' ? /[0-7_]/ : /[01_]/;
    decimal = false;
    p += 2;
  }
  while (p < src.length && digits.test(src[p]!)) p++;
  if (src[p] === '.') {
    p++;
    while (p < src.length && digits.test(src[p]!)) p++;
  }
  if (decimal && (src[p] === 'e' || src[p] === 'E')) {
    p++;
    if (src[p] === '+' || src[p] === '-') p++;
    while (p < src.length && /[0-9_]/.test(src[p]!)) p++;
  }
  if (isAlnumAt(src, p) > 0) {
    p = scanAlnum(src, p);
    throw new ParseFailure(start, `bad number syntax: "${src.slice(start, p)}"`);
  }
  const text = src.slice(start, p);
  push('number', start, p, parseNumber(text, start));
  return p;
}

const INT_SYNTAX =
  /^[+-]?(?:0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|0[oO][0-7]+(?:_[0-7]+)*|0[bB][01]+(?:_[01]+)*|\d+(?:_\d+)*)$/;
const FLOAT_SYNTAX =
  /^[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+(?:_\d+)*)?$/;

function parseNumber(text: string, pos: number): number | ExactNumber {
  if (INT_SYNTAX.test(text)) {
    const neg = text.startsWith('-');
    let body = text.replace(/^[+-]/, '').replaceAll('_', '');
    // Go's base-0 integers: a leading 0 means octal.
    if (/^0[0-7]+$/.test(body)) body = '0o' + body.slice(1);
    else if (/^0\d+$/.test(body)) throw new ParseFailure(pos, `bad number syntax: "${text}"`);
    let value = BigInt(body);
    if (neg) value = -value;
    const asNumber = Number(value);
    return Number.isSafeInteger(asNumber) ? asNumber : new ExactNumber(value.toString());
  }
  if (FLOAT_SYNTAX.test(text) && /[0-9]/.test(text)) {
    const value = Number(text.replaceAll('_', ''));
    if (Number.isFinite(value)) return value;
  }
  throw new ParseFailure(pos, `bad number syntax: "${text}"`);
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92 };

/** Go's strconv.Unquote body decoding (quote is `"` or `'`). */
function unquote(body: string, q: string, pos: number): string {
  if (!body.includes('\\')) return body;
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  const bad = (): never => {
    throw new ParseFailure(
      pos,
      `invalid syntax in ${q === '"' ? 'quoted string' : 'character constant'}: ${q}${body}${q}`,
    );
  };
  for (let i = 0; i < body.length;) {
    const c = body[i]!;
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...encoder.encode(ch));
      i += ch.length;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) bad();
    i += 2;
    if (e! in SIMPLE_ESCAPES) {
      bytes.push(SIMPLE_ESCAPES[e!]!);
    } else if (e === q) {
      bytes.push(q.charCodeAt(0));
    } else if (e === 'x') {
      const h = body.slice(i, i + 2);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) bad();
      bytes.push(parseInt(h, 16));
      i += 2;
    } else if (e !== undefined && e >= '0' && e <= '7') {
      const o = body.slice(i - 1, i + 2);
      if (!/^[0-7]{3}$/.test(o) || parseInt(o, 8) > 255) bad();
      bytes.push(parseInt(o, 8));
      i += 2;
    } else if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      const h = body.slice(i, i + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) bad();
      const cp = parseInt(h, 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) bad();
      bytes.push(...encoder.encode(String.fromCodePoint(cp)));
      i += n;
    } else {
      bad();
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

// =============================================================================================
// Syntax tree

type Operand =
  | { kind: 'dot'; pos: number; end: number }
  | { kind: 'nil'; pos: number; end: number }
  | { kind: 'literal'; value: unknown; pos: number; end: number }
  | { kind: 'field'; names: string[]; pos: number; end: number }
  | { kind: 'var'; name: string; names: string[]; pos: number; end: number }
  | { kind: 'func'; name: string; fn: Builtin; pos: number; end: number }
  | { kind: 'paren'; pipe: Pipe; names: string[]; pos: number; end: number };

interface Command {
  args: Operand[];
  pos: number;
  end: number;
}

interface Pipe {
  decl: string[];
  isAssign: boolean;
  cmds: Command[];
  pos: number;
  end: number;
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipe }
  | { kind: 'if' | 'with'; pipe: Pipe; list: Node[]; elseList: Node[] | undefined }
  | { kind: 'range'; pipe: Pipe; list: Node[]; elseList: Node[] | undefined }
  | { kind: 'break' | 'continue'; pos: number; end: number };

// =============================================================================================
// Parser

type Terminator = { kind: 'end' | 'else'; token: Token } | undefined;

class Parser {
  private readonly tokens: Token[];
  private i = 0;
  private readonly vars: string[] = ['$'];
  private rangeDepth = 0;

  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  parse(): Node[] {
    const [list, term] = this.itemList();
    if (term) throw new ParseFailure(term.token.pos, `unexpected {{${term.kind}}}`);
    return list;
  }

  private peek(): Token {
    return this.tokens[this.i]!;
  }

  private next(): Token {
    return this.tokens[this.i++]!;
  }

  private peekNonSpace(): Token {
    let j = this.i;
    while (this.tokens[j]!.kind === 'space') j++;
    return this.tokens[j]!;
  }

  private nextNonSpace(): Token {
    while (this.peek().kind === 'space') this.i++;
    return this.next();
  }

  private expectClose(context: string): Token {
    const t = this.nextNonSpace();
    if (t.kind !== 'close') throw this.unexpected(t, context);
    return t;
  }

  private unexpected(t: Token, context: string): ParseFailure {
    if (t.kind === 'eof') return new ParseFailure(t.pos, `unexpected EOF in ${context}`);
    if (t.kind === 'close') return new ParseFailure(t.pos, `unexpected "}}" in ${context}`);
    return new ParseFailure(t.pos, `unexpected ${JSON.stringify(t.text)} in ${context}`);
  }

  /** Nodes up to {{end}}, {{else}} (returned as the terminator, after the keyword) or EOF. */
  private itemList(): [Node[], Terminator] {
    const list: Node[] = [];
    for (;;) {
      const t = this.next();
      switch (t.kind) {
        case 'eof':
          return [list, undefined];
        case 'text':
          list.push({ kind: 'text', text: t.text });
          continue;
        case 'open': {
          const k = this.peekNonSpace();
          if (k.kind === 'keyword') {
            this.nextNonSpace();
            switch (k.text) {
              case 'end':
                this.expectClose('end');
                return [list, { kind: 'end', token: k }];
              case 'else':
                return [list, { kind: 'else', token: k }];
              case 'if':
              case 'with':
              case 'range':
                list.push(this.control(k.text, t));
                continue;
              case 'break':
              case 'continue': {
                if (this.rangeDepth === 0) throw new ParseFailure(k.pos, `{{${k.text}}} outside {{range}}`);
                const close = this.expectClose(k.text);
                list.push({ kind: k.text, pos: k.pos, end: close.pos });
                continue;
              }
              default:
                throw new ParseFailure(k.pos, `{{${k.text}}} is not supported`);
            }
          }
          const pipe = this.pipeline('command', 'close');
          list.push({ kind: 'action', pipe });
          continue;
        }
        default:
          throw this.unexpected(t, 'template');
      }
    }
  }

  private control(kind: 'if' | 'with' | 'range', open: Token): Node {
    const mark = this.vars.length;
    const pipe = this.pipeline(kind, 'close');
    const afterPipe = this.vars.length;
    if (kind === 'range') this.rangeDepth++;
    const [list, term] = this.itemList();
    if (kind === 'range') this.rangeDepth--;
    this.vars.length = afterPipe;
    if (!term) throw new ParseFailure(open.pos, `unexpected EOF: {{${kind}}} has no matching {{end}}`);
    let elseList: Node[] | undefined;
    if (term.kind === 'else') {
      const k = this.peekNonSpace();
      if (
        k.kind === 'keyword' &&
        ((kind === 'if' && k.text === 'if') || (kind === 'with' && k.text === 'with'))
      ) {
        // {{else if …}} is {{else}}{{if …}}…{{end}} sharing the outer {{end}}.
        this.nextNonSpace();
        elseList = [this.control(kind, term.token)];
      } else {
        this.expectClose('else');
        const [list2, term2] = this.itemList();
        this.vars.length = afterPipe;
        if (!term2) throw new ParseFailure(open.pos, `unexpected EOF: {{${kind}}} has no matching {{end}}`);
        if (term2.kind !== 'end') throw new ParseFailure(term2.token.pos, `expected {{end}}, found {{else}}`);
        elseList = list2;
      }
    }
    this.vars.length = mark;
    return { kind, pipe, list, elseList };
  }

  private pipeline(context: string, endKind: 'close' | 'rparen'): Pipe {
    const start = this.peekNonSpace();
    const pipe: Pipe = { decl: [], isAssign: false, cmds: [], pos: start.pos, end: start.pos };
    const v = this.peekNonSpace();
    if (v.kind === 'var') {
      const save = this.i;
      this.nextNonSpace();
      const after = this.peekNonSpace();
      if (after.kind === 'declare' || after.kind === 'assign') {
        this.nextNonSpace();
        pipe.decl.push(v.text);
        pipe.isAssign = after.kind === 'assign';
      } else if (after.kind === 'comma' && context === 'range') {
        this.nextNonSpace();
        const v2 = this.nextNonSpace();
        if (v2.kind !== 'var') throw new ParseFailure(v2.pos, 'range can only initialize variables');
        const op = this.nextNonSpace();
        if (op.kind !== 'declare' && op.kind !== 'assign') throw this.unexpected(op, 'range declaration');
        pipe.decl.push(v.text, v2.text);
        pipe.isAssign = op.kind === 'assign';
      } else if (after.kind === 'comma') {
        throw new ParseFailure(after.pos, `too many declarations in ${context}`);
      } else {
        this.i = save;
      }
      if (pipe.isAssign) {
        for (const name of pipe.decl) {
          if (!this.vars.includes(name)) throw new ParseFailure(v.pos, `undefined variable "${name}"`);
        }
      }
    }
    for (;;) {
      const t = this.peekNonSpace();
      if (t.kind === endKind) {
        if (pipe.cmds.length === 0) throw new ParseFailure(t.pos, `missing value for ${context}`);
        this.nextNonSpace();
        pipe.end = t.pos;
        break;
      }
      if (pipe.cmds.length > 0) throw this.unexpected(t, context);
      this.commands(pipe, context, endKind);
    }
    // Only the first command of a pipeline can start with a non-executable operand.
    for (let k = 1; k < pipe.cmds.length; k++) {
      const first = pipe.cmds[k]!.args[0]!;
      if (first.kind === 'literal' || first.kind === 'dot' || first.kind === 'nil') {
        throw new ParseFailure(first.pos, `non executable command in pipeline stage ${k + 1}`);
      }
    }
    if (!pipe.isAssign) this.vars.push(...pipe.decl);
    return pipe;
  }

  /** Commands separated by `|`, up to (not including) the end token. */
  private commands(pipe: Pipe, context: string, endKind: 'close' | 'rparen'): void {
    for (;;) {
      const cmd = this.command(context, endKind);
      pipe.cmds.push(cmd);
      const t = this.peekNonSpace();
      if (t.kind === 'pipe') {
        this.nextNonSpace();
        const n = this.peekNonSpace();
        if (n.kind === endKind || n.kind === 'pipe' || n.kind === 'eof') {
          throw new ParseFailure(n.pos, `missing command after "|" in ${context}`);
        }
        continue;
      }
      return;
    }
  }

  private command(context: string, endKind: 'close' | 'rparen'): Command {
    const args: Operand[] = [];
    const first = this.peekNonSpace();
    for (;;) {
      const t = this.peekNonSpace();
      if (t.kind === endKind || t.kind === 'pipe') break;
      const op = this.operand(context);
      args.push(op);
      const after = this.peek();
      if (after.kind === 'space' || after.kind === endKind || after.kind === 'pipe') continue;
      throw this.unexpected(after, 'operand');
    }
    if (args.length === 0) throw new ParseFailure(first.pos, `empty command in ${context}`);
    if (args[0]!.kind === 'nil') throw new ParseFailure(args[0]!.pos, 'nil is not a command');
    return { args, pos: args[0]!.pos, end: args[args.length - 1]!.end };
  }

  private operand(context: string): Operand {
    const t = this.nextNonSpace();
    let op: Operand;
    switch (t.kind) {
      case 'ident': {
        const fn = BUILTINS.get(t.text);
        if (!fn) throw new ParseFailure(t.pos, `function "${t.text}" not defined`);
        op = { kind: 'func', name: t.text, fn, pos: t.pos, end: t.end };
        break;
      }
      case 'dot':
        op = { kind: 'dot', pos: t.pos, end: t.end };
        break;
      case 'nil':
        op = { kind: 'nil', pos: t.pos, end: t.end };
        break;
      case 'var':
        if (!this.vars.includes(t.text)) throw new ParseFailure(t.pos, `undefined variable "${t.text}"`);
        op = { kind: 'var', name: t.text, names: [], pos: t.pos, end: t.end };
        break;
      case 'field':
        op = { kind: 'field', names: [t.text.slice(1)], pos: t.pos, end: t.end };
        break;
      case 'bool':
      case 'number':
      case 'string':
        op = { kind: 'literal', value: t.value, pos: t.pos, end: t.end };
        break;
      case 'lparen': {
        const pipe = this.pipeline('parenthesized pipeline', 'rparen');
        op = { kind: 'paren', pipe, names: [], pos: t.pos, end: this.tokens[this.i - 1]!.end };
        break;
      }
      default:
        throw this.unexpected(t, context);
    }
    // A field right after a term (no space) chains onto it: $x.a, (pipe).a, .a.b
    while (this.peek().kind === 'field') {
      const f = this.next();
      if (op.kind === 'field' || op.kind === 'var' || op.kind === 'paren') {
        op.names.push(f.text.slice(1));
        op.end = f.end;
      } else {
        throw new ParseFailure(f.pos, `unexpected ${f.text} after term ${JSON.stringify(t.text)}`);
      }
    }
    return op;
  }
}

// =============================================================================================
// Builtin functions

class FuncError extends Error {}

/** The value of a command that was given no piped argument (distinct from undefined = "no value"). */
const NO_FINAL: unique symbol = Symbol('no final');

interface Builtin {
  min: number;
  max: number;
  /** Receives thunks (and, or), so arguments are evaluated only as needed. */
  lazy?: boolean;
  fn(args: unknown[]): unknown;
}

/** Go's truth: false, 0, "", nil, empty arrays and maps are false. */
export function truth(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  switch (typeof v) {
    case 'boolean':
      return v;
    case 'string':
      return v.length > 0;
    case 'number':
      return v !== 0;
    case 'bigint':
      return v !== 0n;
    case 'function':
      return true;
    default:
      break;
  }
  if (v instanceof ExactNumber) return Number(v.text) !== 0;
  if (Array.isArray(v)) return v.length > 0;
  if (isPlainObject(v)) {
    for (const k in v) if (Object.hasOwn(v, k)) return true;
    return false;
  }
  return true;
}

type BasicKind = 'nil' | 'bool' | 'number' | 'string' | 'other';

function basicKind(v: unknown): BasicKind {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  if (isNumeric(v)) return 'number';
  return 'other';
}

function compareNumbers(a: number | ExactNumber, b: number | ExactNumber): number {
  const ia = integerValue(a);
  const ib = integerValue(b);
  if (ia !== undefined && ib !== undefined) return ia < ib ? -1 : ia > ib ? 1 : 0;
  const x = Number(a);
  const y = Number(b);
  return x < y ? -1 : x > y ? 1 : x === y ? 0 : NaN;
}

function eqPair(a: unknown, b: unknown): boolean {
  const ka = basicKind(a);
  const kb = basicKind(b);
  if (ka !== kb) {
    if (ka === 'nil' || kb === 'nil') return false;
    // A data number is a json.Number (a string) in Falcosidekick: compare its text.
    if (ka === 'number' && kb === 'string') return numberText(a as number | ExactNumber) === b;
    if (ka === 'string' && kb === 'number') return a === numberText(b as number | ExactNumber);
    throw new FuncError('incompatible types for comparison');
  }
  switch (ka) {
    case 'nil':
      return true;
    case 'number':
      return compareNumbers(a as number | ExactNumber, b as number | ExactNumber) === 0;
    case 'other':
      throw new FuncError(`non-comparable types ${typeName(a)} and ${typeName(b)}`);
    default:
      return a === b;
  }
}

function ordered(a: unknown, b: unknown): number {
  const ka = basicKind(a);
  const kb = basicKind(b);
  if (ka === 'nil' || ka === 'bool' || ka === 'other' || kb === 'nil' || kb === 'bool' || kb === 'other') {
    throw new FuncError('invalid type for comparison');
  }
  if (ka !== kb) throw new FuncError('incompatible types for comparison');
  if (ka === 'number') return compareNumbers(a as number | ExactNumber, b as number | ExactNumber);
  return Math.sign(compareUtf8(a as string, b as string));
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function indexInt(key: unknown, length: number, what: string): number {
  const i = isNumeric(key) ? integerValue(key) : undefined;
  if (i === undefined) throw new FuncError(`cannot index ${what} with type ${typeName(key)}`);
  if (i < 0n || i >= BigInt(length)) throw new FuncError(`index out of range: ${i}`);
  return Number(i);
}

function index(args: unknown[]): unknown {
  let item = args[0];
  if (item === null || item === undefined) throw new FuncError('index of untyped nil');
  for (let k = 1; k < args.length; k++) {
    const key = args[k];
    if (item === null || item === undefined) throw new FuncError('index of nil pointer');
    if (Array.isArray(item)) {
      item = item[indexInt(key, item.length, 'slice/array')] as unknown;
    } else if (typeof item === 'string') {
      const bytes = Buffer.from(item, 'utf8');
      item = bytes[indexInt(key, bytes.length, 'string')];
    } else if (isPlainObject(item)) {
      if (typeof key !== 'string') {
        if (key === null || key === undefined) throw new FuncError('value is nil; should be of type string');
        throw new FuncError(`value has type ${typeName(key)}; should be string`);
      }
      item = Object.hasOwn(item, key) ? item[key] : null;
    } else {
      throw new FuncError(`can't index item of type ${typeName(item)}`);
    }
    if (item === undefined) item = null;
  }
  return item;
}

function sliceFn(args: unknown[]): unknown {
  const item = args[0];
  if (item === null || item === undefined) throw new FuncError('slice of untyped nil');
  let length: number;
  let bytes: Buffer | undefined;
  if (typeof item === 'string') {
    bytes = Buffer.from(item, 'utf8');
    length = bytes.length;
  } else if (Array.isArray(item)) length = item.length;
  else throw new FuncError(`can't slice item of type ${typeName(item)}`);
  if (args.length > 4 || (args.length === 4 && bytes))
    throw new FuncError(`too many slice indexes: ${args.length - 1}`);
  const idx = args.slice(1).map((a) => {
    const i = isNumeric(a) ? integerValue(a) : undefined;
    if (i === undefined) throw new FuncError(`cannot index slice/array with type ${typeName(a)}`);
    if (i < 0n || i > BigInt(length)) throw new FuncError(`index out of range: ${i}`);
    return Number(i);
  });
  const from = idx[0] ?? 0;
  const to = idx[1] ?? length;
  if (from > to) throw new FuncError(`invalid slice index: ${from} > ${to}`);
  if (idx[2] !== undefined && to > idx[2]) throw new FuncError(`invalid slice index: ${to} > ${idx[2]}`);
  return bytes ? bytes.subarray(from, to).toString('utf8') : (item as unknown[]).slice(from, to);
}

/** Go's evalArgs for html/js/urlquery: one string as is, else fmt.Sprint with nil as `<no value>`. */
function escapeArgs(args: unknown[]): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(args.map((a) => (a === null || a === undefined ? '<no value>' : a)));
}

function lazyArgs(args: unknown[]): (() => unknown)[] {
  return args as (() => unknown)[];
}

/**
 * Go's `and` / `or`: evaluates arguments in order and returns the first whose truth is `stopAt`
 * (false for and, true for or), else the last.
 */
function shortCircuit(stopAt: boolean): Builtin {
  return {
    min: 1,
    max: Infinity,
    lazy: true,
    fn: (args) => {
      let v: unknown;
      for (const t of lazyArgs(args)) {
        v = t();
        if (truth(v) === stopAt) return v;
      }
      return v;
    },
  };
}

const BUILTINS = new Map<string, Builtin>([
  ['and', shortCircuit(false)],
  ['or', shortCircuit(true)],
  ['not', { min: 1, max: 1, fn: (args) => !truth(args[0]) }],
  [
    'eq',
    {
      min: 1,
      max: Infinity,
      fn: (args) => {
        if (args.length < 2) throw new FuncError('missing argument for comparison');
        for (let k = 1; k < args.length; k++) if (eqPair(args[0], args[k])) return true;
        return false;
      },
    },
  ],
  ['ne', { min: 2, max: 2, fn: (args) => !eqPair(args[0], args[1]) }],
  ['lt', { min: 2, max: 2, fn: (args) => ordered(args[0], args[1]) < 0 }],
  ['le', { min: 2, max: 2, fn: (args) => ordered(args[0], args[1]) <= 0 }],
  ['gt', { min: 2, max: 2, fn: (args) => ordered(args[0], args[1]) > 0 }],
  ['ge', { min: 2, max: 2, fn: (args) => ordered(args[0], args[1]) >= 0 }],
  [
    'len',
    {
      min: 1,
      max: 1,
      fn: (args) => {
        const v = args[0];
        if (typeof v === 'string') return utf8Length(v);
        if (Array.isArray(v)) return v.length;
        if (isPlainObject(v)) return Object.keys(v).length;
        if (v === null || v === undefined) throw new FuncError('len of nil pointer');
        throw new FuncError(`len of type ${typeName(v)}`);
      },
    },
  ],
  ['index', { min: 1, max: Infinity, fn: index }],
  ['slice', { min: 1, max: Infinity, fn: sliceFn }],
  ['print', { min: 0, max: Infinity, fn: (args) => sprint(args) }],
  [
    'printf',
    {
      min: 1,
      max: Infinity,
      fn: (args) => {
        const format = args[0];
        if (typeof format !== 'string')
          throw new FuncError(`wrong type for value; expected string; got ${typeName(format)}`);
        return sprintf(format, args.slice(1));
      },
    },
  ],
  ['println', { min: 0, max: Infinity, fn: (args) => sprintln(args) }],
  ['html', { min: 0, max: Infinity, fn: (args) => htmlEscape(escapeArgs(args)) }],
  ['js', { min: 0, max: Infinity, fn: (args) => jsEscape(escapeArgs(args)) }],
  ['urlquery', { min: 0, max: Infinity, fn: (args) => queryEscape(escapeArgs(args)) }],
]);

/** Names of the functions templates may call. */
export const TEMPLATE_FUNCTIONS: readonly string[] = [...BUILTINS.keys()];

// =============================================================================================
// Execution

/** Internal: a runtime error at a node (turned into TemplateError with the partial output). */
class ExecFailure extends Error {
  readonly pos: number;
  readonly end: number;
  constructor(node: { pos: number; end: number }, message: string) {
    super(message);
    this.pos = node.pos;
    this.end = node.end;
  }
}

const Signal = { None: 0, Break: 1, Continue: 2 } as const;
type Signal = (typeof Signal)[keyof typeof Signal];

interface Variable {
  name: string;
  value: unknown;
}

type At = { pos: number; end: number };

class State {
  out = '';
  readonly vars: Variable[];
  private readonly source: string;

  constructor(source: string, data: unknown) {
    this.source = source;
    this.vars = [{ name: '$', value: data }];
  }

  lookup(name: string, node: At): unknown {
    for (let k = this.vars.length - 1; k >= 0; k--) {
      const v = this.vars[k]!;
      if (v.name === name) return v.value;
    }
    throw new ExecFailure(node, `undefined variable: ${name}`);
  }

  set(name: string, value: unknown, node: At): void {
    for (let k = this.vars.length - 1; k >= 0; k--) {
      const v = this.vars[k]!;
      if (v.name === name) {
        v.value = value;
        return;
      }
    }
    throw new ExecFailure(node, `undefined variable: ${name}`);
  }

  walk(list: readonly Node[], dot: unknown): Signal {
    for (const node of list) {
      switch (node.kind) {
        case 'text':
          this.out += node.text;
          break;
        case 'action': {
          const value = this.evalPipeline(dot, node.pipe);
          if (node.pipe.decl.length === 0) this.out += this.printable(value, node.pipe);
          break;
        }
        case 'if':
        case 'with': {
          const mark = this.vars.length;
          const value = this.evalPipeline(dot, node.pipe);
          let signal: Signal = Signal.None;
          if (truth(value)) signal = this.walk(node.list, node.kind === 'with' ? value : dot);
          else if (node.elseList) signal = this.walk(node.elseList, dot);
          this.vars.length = mark;
          if (signal !== Signal.None) return signal;
          break;
        }
        case 'range': {
          const signal = this.walkRange(node, dot);
          if (signal !== Signal.None) return signal;
          break;
        }
        case 'break':
          return Signal.Break;
        case 'continue':
          return Signal.Continue;
      }
    }
    return Signal.None;
  }

  private walkRange(node: Extract<Node, { kind: 'range' }>, dot: unknown): Signal {
    const mark = this.vars.length;
    const pipe = node.pipe;
    const value = this.evalCommands(dot, pipe);
    if (!pipe.isAssign) for (const name of pipe.decl) this.vars.push({ name, value });
    const inner = this.vars.length;
    const one = (key: unknown, elem: unknown): boolean => {
      if (pipe.decl.length === 1) this.set(pipe.decl[0]!, elem, pipe);
      else if (pipe.decl.length === 2) {
        this.set(pipe.decl[0]!, key, pipe);
        this.set(pipe.decl[1]!, elem, pipe);
      }
      const signal = this.walk(node.list, elem);
      this.vars.length = inner;
      return signal === Signal.Break;
    };
    let ran = false;
    if (Array.isArray(value)) {
      for (let k = 0; k < value.length; k++) {
        ran = true;
        if (one(k, value[k])) break;
      }
    } else if (isPlainObject(value)) {
      for (const k of sortedKeys(value)) {
        ran = true;
        if (one(k, value[k])) break;
      }
    } else if (isNumeric(value) && integerValue(value) !== undefined) {
      if (pipe.decl.length > 1)
        throw new ExecFailure(pipe, `can't use ${numberText(value)} to iterate over more than one variable`);
      const n = Number(integerValue(value));
      for (let k = 0; k < n; k++) {
        ran = true;
        if (one(k, k)) break;
      }
    } else if (value !== undefined && value !== null) {
      throw new ExecFailure(pipe, `range can't iterate over ${formatValue(value)}`);
    }
    let signal: Signal = Signal.None;
    if (!ran && node.elseList) signal = this.walk(node.elseList, dot);
    this.vars.length = mark;
    return signal;
  }

  private printable(value: unknown, node: At): string {
    if (value === undefined || value === null) return '<no value>';
    if (typeof value === 'function') throw new ExecFailure(node, "can't print value of type func");
    return typeof value === 'string' ? value : formatValue(value);
  }

  private evalPipeline(dot: unknown, pipe: Pipe): unknown {
    const value = this.evalCommands(dot, pipe);
    for (const name of pipe.decl) {
      if (pipe.isAssign) this.set(name, value, pipe);
      else this.vars.push({ name, value });
    }
    return value;
  }

  private evalCommands(dot: unknown, pipe: Pipe): unknown {
    let value: unknown = NO_FINAL;
    for (const cmd of pipe.cmds) {
      value = this.evalCommand(dot, cmd, value);
      // Go digs the value out of its interface{}: a nil interface becomes "no value".
      if (value === null) value = undefined;
    }
    return value;
  }

  private evalCommand(dot: unknown, cmd: Command, final: unknown): unknown {
    const first = cmd.args[0]!;
    switch (first.kind) {
      case 'func':
        return this.call(dot, first, cmd.args.slice(1), final, cmd);
      case 'field':
        return this.fieldChain(dot, dot, first.names, cmd.args.slice(1), final, cmd);
      case 'var': {
        const value = this.lookup(first.name, first);
        if (first.names.length > 0)
          return this.fieldChain(dot, value, first.names, cmd.args.slice(1), final, cmd);
        this.notAFunction(cmd, final);
        return value;
      }
      case 'paren': {
        const value = this.evalCommands(dot, first.pipe);
        if (first.names.length > 0)
          return this.fieldChain(dot, value, first.names, cmd.args.slice(1), final, cmd);
        this.notAFunction(cmd, final);
        return value;
      }
      default:
        this.notAFunction(cmd, final);
        return this.evalArg(dot, first);
    }
  }

  private notAFunction(cmd: Command, final: unknown): void {
    if (cmd.args.length > 1 || final !== NO_FINAL) {
      throw new ExecFailure(cmd, `can't give argument to non-function ${this.text(cmd.args[0]!)}`);
    }
  }

  /** The value of an argument; "no value" becomes nil, as Go converts it for an interface{} parameter. */
  private evalArg(dot: unknown, op: Operand): unknown {
    let v: unknown;
    switch (op.kind) {
      case 'dot':
        v = dot;
        break;
      case 'nil':
        v = null;
        break;
      case 'literal':
        v = op.value;
        break;
      case 'field':
        v = this.fieldChain(dot, dot, op.names, [], NO_FINAL, op);
        break;
      case 'var':
        v = this.lookup(op.name, op);
        if (op.names.length > 0) v = this.fieldChain(dot, v, op.names, [], NO_FINAL, op);
        break;
      case 'paren':
        v = this.evalCommands(dot, op.pipe);
        if (op.names.length > 0) v = this.fieldChain(dot, v, op.names, [], NO_FINAL, op);
        break;
      case 'func':
        v = this.call(dot, op, [], NO_FINAL, op);
        break;
    }
    return v === undefined ? null : v;
  }

  private call(
    dot: unknown,
    fn: Extract<Operand, { kind: 'func' }>,
    argNodes: readonly Operand[],
    final: unknown,
    at: At,
  ): unknown {
    const builtin = fn.fn;
    const count = argNodes.length + (final === NO_FINAL ? 0 : 1);
    if (count < builtin.min || count > builtin.max) {
      const want = builtin.max === Infinity ? `at least ${builtin.min}` : String(builtin.min);
      throw new ExecFailure(at, `wrong number of args for ${fn.name}: want ${want} got ${count}`);
    }
    let args: unknown[];
    if (builtin.lazy) {
      args = argNodes.map((n) => () => this.evalArg(dot, n));
      if (final !== NO_FINAL) args.push(() => final ?? null);
    } else {
      args = argNodes.map((n) => this.evalArg(dot, n));
      if (final !== NO_FINAL) args.push(final ?? null);
    }
    try {
      return builtin.fn(args);
    } catch (err) {
      if (err instanceof FuncError) throw new ExecFailure(at, `error calling ${fn.name}: ${err.message}`);
      throw err;
    }
  }

  private fieldChain(
    dot: unknown,
    receiver: unknown,
    names: readonly string[],
    argNodes: readonly Operand[],
    final: unknown,
    at: At,
  ): unknown {
    let value = receiver;
    for (let k = 0; k < names.length; k++) {
      const last = k === names.length - 1;
      value = this.field(dot, value, names[k]!, last ? argNodes : [], last ? final : NO_FINAL, at);
    }
    return value;
  }

  private field(
    dot: unknown,
    receiver: unknown,
    name: string,
    argNodes: readonly Operand[],
    final: unknown,
    node: At,
  ): unknown {
    if (receiver === undefined) return undefined; // Go: a field of "no value" is "no value"
    if (receiver === null) throw new ExecFailure(node, `nil pointer evaluating interface {}.${name}`);
    let value: unknown;
    if (isPlainObject(receiver)) {
      value = Object.hasOwn(receiver, name) ? receiver[name] : undefined;
    } else if (
      typeof receiver === 'object' &&
      !Array.isArray(receiver) &&
      !(receiver instanceof ExactNumber) &&
      name in receiver &&
      !(name in Object.prototype)
    ) {
      value = (receiver as Record<string, unknown>)[name];
    } else {
      throw new ExecFailure(node, `can't evaluate field ${name} in type ${typeName(receiver)}`);
    }
    if (typeof value === 'function') {
      const args = argNodes.map((n) => this.evalArg(dot, n));
      if (final !== NO_FINAL) args.push(final ?? null);
      try {
        return (value as (...a: unknown[]) => unknown).apply(receiver, args);
      } catch (err) {
        throw new ExecFailure(node, `error calling ${name}: ${(err as Error).message}`);
      }
    }
    if (argNodes.length > 0 || final !== NO_FINAL)
      throw new ExecFailure(node, `${name} is not a method but has arguments`);
    return value;
  }

  private text(op: Operand): string {
    return this.source.slice(op.pos, op.end);
  }
}

// =============================================================================================
// Public API

function position(source: string, pos: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = source.indexOf('\n'); k >= 0 && k < pos; k = source.indexOf('\n', k + 1)) {
    line++;
    lineStart = k + 1;
  }
  return { line, column: pos - lineStart + 1 };
}

class CompiledTemplate implements Template {
  readonly name: string;
  readonly source: string;
  private readonly root: Node[];

  constructor(name: string, source: string, root: Node[]) {
    this.name = name;
    this.source = source;
    this.root = root;
  }

  execute(data: unknown): string {
    const state = new State(this.source, data);
    try {
      state.walk(this.root, data);
    } catch (err) {
      if (err instanceof ExecFailure) {
        const { line, column } = position(this.source, err.pos);
        let at = this.source.slice(err.pos, err.end);
        if (at.length > 60) at = at.slice(0, 57) + '...';
        const message = `template: ${this.name}:${line}:${column}: executing "${this.name}" at <${at}>: ${err.message}`;
        throw new TemplateError(this.name, line, column, err.message, message, state.out);
      }
      if (err instanceof RangeError) {
        throw new TemplateError(
          this.name,
          1,
          1,
          err.message,
          `template: ${this.name}: ${err.message}`,
          state.out,
        );
      }
      throw err;
    }
    return state.out;
  }
}

/**
 * Parses a template once; `execute` then runs it on any data. Throws TemplateError (with the
 * 1-based line and column) for a syntax error, an unknown function, an undefined variable or an
 * unsupported action.
 */
export function compileTemplate(source: string, name = 'template'): Template {
  try {
    const root = new Parser(lex(source)).parse();
    return new CompiledTemplate(name, source, root);
  } catch (err) {
    if (err instanceof ParseFailure) {
      const { line, column } = position(source, err.pos);
      throw new TemplateError(
        name,
        line,
        column,
        err.message,
        `template: ${name}:${line}:${column}: ${err.message}`,
      );
    }
    throw err;
  }
}
