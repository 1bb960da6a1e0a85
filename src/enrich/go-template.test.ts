import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileTemplate, TemplateError, truth } from './go-template.ts';
import { ExactNumber, parseJson } from '../event/json.ts';

const fields = parseJson(
  JSON.stringify({
    'k8s.ns.name': 'prod',
    'k8s.pod.name': 'web-1',
    'proc.name': 'bash',
    'proc.pid': 4242,
    'fd.num': 0,
    'user.loginuid': -1,
    ratio: 0.5,
    empty: '',
    nul: null,
    list: ['a', 'b', 'c'],
    nested: { b: 2, a: 1, inner: { x: 'deep' } },
    msg: 'he said "hi"\n',
  }),
);
// A 64-bit nanosecond timestamp a JS number would round.
(fields as Record<string, unknown>)['evt.time'] = new ExactNumber('1744000000123456789');

function run(source: string, data: unknown = fields): string {
  return compileTemplate(source, 't').execute(data);
}

function parseError(source: string): TemplateError {
  try {
    compileTemplate(source, 'field');
  } catch (err) {
    assert.ok(err instanceof TemplateError, `expected TemplateError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(source)} not to compile`);
}

function runtimeError(source: string, data: unknown = fields): TemplateError {
  const template = compileTemplate(source, 'field');
  try {
    template.execute(data);
  } catch (err) {
    assert.ok(err instanceof TemplateError, `expected TemplateError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(source)} to fail at runtime`);
}

describe('go-template: text, fields and index', () => {
  it('copies text without actions verbatim', () => {
    assert.equal(run('plain text, no actions'), 'plain text, no actions');
    assert.equal(run(''), '');
  });

  it('reads keys with dots through index', () => {
    assert.equal(run('{{ index . "k8s.ns.name" }}'), 'prod');
    assert.equal(run('{{index . "k8s.ns.name"}}/{{index . "k8s.pod.name"}}'), 'prod/web-1');
  });

  it('reads field chains as map keys', () => {
    assert.equal(run('{{ .nested.a }} {{ .nested.inner.x }}'), '1 deep');
    assert.equal(run('{{ .ratio }}'), '0.5');
  });

  it('renders a missing key as <no value>, also through a chain', () => {
    assert.equal(run('{{ .missing }}'), '<no value>');
    assert.equal(run('{{ .missing.deeper }}'), '<no value>');
    assert.equal(run('{{ index . "missing" }}'), '<no value>');
    assert.equal(run('[{{ .nul }}]'), '[<no value>]');
  });

  it('a nil pipeline result is "no value": fields of it are <no value>, not an error (as in Go)', () => {
    assert.equal(run('{{ (index . "missing").x }}'), '<no value>');
    assert.equal(run('{{ $v := index . "nul" }}{{ $v.x }}'), '<no value>');
  });

  it('only reads own keys (no prototype members)', () => {
    assert.equal(
      run('{{ .constructor }}|{{ index . "toString" }}|{{ .nested.hasOwnProperty }}'),
      '<no value>|<no value>|<no value>',
    );
  });

  it('index of a missing key is nil, so or gives the default', () => {
    assert.equal(run('{{ or (index . "missing") "default" }}'), 'default');
    assert.equal(run('{{ or (index . "k8s.ns.name") "default" }}'), 'prod');
    assert.equal(run('{{ or (index . "empty") "default" }}'), 'default');
    assert.equal(run('{{ print (index . "missing") }}'), '<nil>');
  });

  it('indexes arrays, nested maps with several keys, and strings (bytes)', () => {
    assert.equal(run('{{ index .list 1 }}'), 'b');
    assert.equal(run('{{ index . "nested" "inner" "x" }}'), 'deep');
    assert.equal(run('{{ index "abc" 1 }}'), '98');
  });

  it('prints values as fmt %v does', () => {
    assert.equal(run('{{ .list }}'), '[a b c]');
    assert.equal(run('{{ .nested }}'), 'map[a:1 b:2 inner:map[x:deep]]');
    assert.equal(run('{{ true }} {{ false }} {{ 42 }} {{ -7 }} {{ 1.5 }}'), 'true false 42 -7 1.5');
    assert.equal(run('{{ print nil }}'), '<nil>');
    assert.equal(run('{{ . }}', { a: [1, null], b: 'x' }), 'map[a:[1 <nil>] b:x]');
  });

  it('prints an ExactNumber with its exact text everywhere', () => {
    assert.equal(run('{{ index . "evt.time" }}'), '1744000000123456789');
    assert.equal(
      run('{{ printf "%d|%v|%s" (index . "evt.time") (index . "evt.time") (index . "evt.time") }}'),
      '1744000000123456789|1744000000123456789|1744000000123456789',
    );
    assert.equal(run('{{ if eq (index . "evt.time") 1744000000123456789 }}exact{{ end }}'), 'exact');
    assert.equal(
      run('{{ if eq (index . "evt.time") 1744000000123456790 }}wrong{{ else }}distinct{{ end }}'),
      'distinct',
    );
  });

  it('$ is the root data, also inside with and range', () => {
    assert.equal(run('{{ with .nested }}{{ .a }}-{{ index $ "proc.name" }}{{ end }}'), '1-bash');
    assert.equal(run('{{ range .list }}{{ $.nested.b }}{{ end }}'), '222');
  });

  it('calls a JS function found as a field like a Go method', () => {
    const data = { Rule: 'r', Upper: (s: string) => s.toUpperCase(), Time: { Format: () => '10:00' } };
    assert.equal(run('{{ .Upper "abc" }} {{ .Time.Format }} {{ .Rule | .Upper }}', data), 'ABC 10:00 R');
  });
});

describe('go-template: literals', () => {
  it('decodes Go string escapes and raw strings', () => {
    assert.equal(run('{{ "a\\tb\\n\\"c\\"\\\\" }}'), 'a\tb\n"c"\\');
    assert.equal(run('{{ "\\u00e9\\U0001F600\\x41\\101" }}'), 'é😀AA');
    assert.equal(run('{{ `raw \\n {{ "x" }}` }}'), 'raw \\n {{ "x" }}');
  });

  it('parses numbers in Go syntax', () => {
    assert.equal(
      run("{{ 0x1F }} {{ 0o17 }} {{ 017 }} {{ 0b101 }} {{ 1_000 }} {{ 1e3 }} {{ .5 }} {{ 'a' }} {{ '\\n' }}"),
      '31 15 15 5 1000 1000 0.5 97 10',
    );
    assert.equal(run('{{ 9223372036854775807 }}'), '9223372036854775807');
  });
});

describe('go-template: functions', () => {
  it('and / or return the deciding argument and short-circuit', () => {
    assert.equal(run('{{ and 1 "x" }}|{{ and 0 "x" }}|{{ or "" 0 "z" }}|{{ or "" 0 }}'), 'x|0|z|0');
    // The second argument would fail (index of a non-map); short-circuit never evaluates it.
    assert.equal(run('{{ or "first" (index 1 2) }}'), 'first');
    assert.equal(run('{{ and "" (index 1 2) }}'), '');
  });

  it('not follows Go truth', () => {
    assert.equal(
      run('{{ not "" }} {{ not "x" }} {{ not 0 }} {{ not .list }} {{ not .missing }} {{ not .nested }}'),
      'true false true false true false',
    );
  });

  it('eq compares with each further argument', () => {
    assert.equal(run('{{ eq (index . "proc.name") "sh" "bash" "zsh" }}'), 'true');
    assert.equal(run('{{ eq (index . "proc.name") "sh" "zsh" }}'), 'false');
    assert.equal(run('{{ eq .missing "x" }} {{ eq .missing nil }}'), 'false true');
    assert.equal(run('{{ eq (index . "proc.pid") 4242 }} {{ eq (index . "proc.pid") "4242" }}'), 'true true');
  });

  it('ne, lt, le, gt, ge on numbers and strings', () => {
    assert.equal(
      run('{{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt 3 2 }} {{ ge 1 2 }}'),
      'true true true true false',
    );
    assert.equal(run('{{ lt "abc" "abd" }} {{ gt "b" "a" }}'), 'true true');
    // By UTF-8 bytes as Go: U+E000 (EE 80 80) before U+1F600 (F0 9F 98 80), the reverse of UTF-16.
    assert.equal(run('{{ lt "\uE000" "\u{1F600}" }} {{ gt "\u{1F600}" "\uFFFF" }}'), 'true true');
    assert.equal(run('{{ . }}', { '\u{1F600}': 1, '\uE000': 2 }), 'map[\uE000:2 \u{1F600}:1]');
    assert.equal(run('{{ if gt (index . "proc.pid") 1000 }}high{{ end }}'), 'high');
  });

  it('len counts bytes of strings, elements of arrays and maps', () => {
    assert.equal(run('{{ len "héllo" }} {{ len .list }} {{ len .nested }}'), '6 3 3');
  });

  it('slice cuts strings and arrays', () => {
    assert.equal(run('{{ slice "abcdef" 1 3 }} {{ slice .list 1 }}'), 'bc [b c]');
  });

  it('print, println', () => {
    assert.equal(run('{{ print 1 2 "a" "b" 3 }}'), '1 2ab3');
    assert.equal(run('{{ println "a" 1 }}'), 'a 1\n');
  });

  it('printf with Go verbs', () => {
    assert.equal(run('{{ printf "%s=%d" "pid" 42 }}'), 'pid=42');
    assert.equal(run('{{ printf "%v %v %v" "s" 1.25 .list }}'), 's 1.25 [a b c]');
    assert.equal(run('{{ printf "%q" "a\\"b" }}'), '"a\\"b"');
    assert.equal(run('{{ printf "%t %t" true false }}'), 'true false');
    assert.equal(run('{{ printf "%x %X %x" 255 255 "hi" }}'), 'ff FF 6869');
    assert.equal(
      run('{{ printf "%f %.2f %e %g %g" 3.14159 3.14159 123456.789 100000.0 1000000.0 }}'),
      '3.141590 3.14 1.234568e+05 100000 1e+06',
    );
    assert.equal(run('{{ printf "100%%" }}'), '100%');
  });

  it('printf with width, precision and flags', () => {
    assert.equal(
      run('{{ printf "[%5s][%-5s][%.2s][%05d][%+d][%8.3f][%-6d]" "ab" "ab" "abc" 42 5 3.14159 7 }}'),
      '[   ab][ab   ][ab][00042][+5][   3.142][7     ]',
    );
  });

  it('printf: other verbs and flags', () => {
    assert.equal(
      run('{{ printf "%c|%o|%#o|%b|%#b|%U|%#x|%x|% x" 65 8 8 5 5 0x1F600 255 -255 "hi" }}'),
      'A|10|010|101|0b101|U+1F600|0xff|-ff|68 69',
    );
    assert.equal(
      run('{{ printf "%T %T %T %T %T %T" "s" 1 1.5 .list .nested nil }}'),
      'string int float64 []interface {} map[string]interface {} <nil>',
    );
    assert.equal(
      run(String.raw`{{ printf "%+q|%#q|%q" "é" "a" "\a\x01\u00a0😀" }}`),
      String.raw`"\u00e9"|${'`a`'}|"\a\x01\u00a0😀"`,
    );
    assert.equal(
      run('{{ printf "%E|%G|%.3e|%6.2f|%-10.3e|" 1234.5 1e-7 0.0 -1.5 1.5 }}'),
      '1.234500E+03|1E-07|0.000e+00| -1.50|1.500e+00 |',
    );
    assert.equal(
      run('{{ printf "%g %g %.3g %.3g %g" 0.0001 0.00001 1234567.0 1.0 -0.5 }}'),
      '0.0001 1e-05 1.23e+06 1 -0.5',
    );
    assert.equal(run('{{ printf "[%.0d][%8.3d][%*d][%-*d]" 0 7 5 3 3 1 }}'), '[][     007][    3][1  ]');
    assert.equal(
      run('{{ printf "%d|%z|%s" 1.5 1 (index . "evt.time") }}'),
      '%!d(float64=1.5)|%!z(int=1)|1744000000123456789',
    );
    assert.equal(run('{{ printf "%v %d" .list .list }}', { list: [1, null] }), '[1 <nil>] [1 <nil>]');
    assert.equal(run('{{ printf "%s" .m }}', { m: { k: 'v' } }), 'map[k:v]');
    assert.equal(run('{{ printf "x%" }}'), 'x%!(NOVERB)');
    assert.equal(run('{{ printf "%05d|%+.1f|%x" -42 2.25 "" }}'), '-0042|+2.2|');
  });

  it('printf reports bad verbs, missing and extra arguments as Go does', () => {
    assert.equal(run('{{ printf "%d" "x" }}'), '%!d(string=x)');
    assert.equal(run('{{ printf "%s %s" "x" }}'), 'x %!s(MISSING)');
    assert.equal(run('{{ printf "%s" "x" 1 }}'), 'x%!(EXTRA int=1)');
    assert.equal(run('{{ printf "%d" .missing }}'), '%!d(<nil>)');
  });

  it('pipelines pass the value as the last argument', () => {
    assert.equal(run('{{ .msg | printf "%q" }}'), '"he said \\"hi\\"\\n"');
    assert.equal(run('{{ index . "proc.name" | printf "%s-%s" "x" }}'), 'x-bash');
    assert.equal(run('{{ .missing | or "fallback" }}'), 'fallback');
    assert.equal(run('{{ "a<b" | html | printf "[%s]" }}'), '[a&lt;b]');
  });

  it('html, js and urlquery escape as Go does', () => {
    assert.equal(run(`{{ html "<a href='x'>&\\"" }}`), '&lt;a href=&#39;x&#39;&gt;&amp;&#34;');
    assert.equal(run(`{{ js "it's <b>\\"q\\" a=b\\n" }}`), 'it\\\'s \\u003Cb\\u003E\\"q\\" a\\u003Db\\u000A');
    assert.equal(run('{{ urlquery "a b&c=d/é" }}'), 'a+b%26c%3Dd%2F%C3%A9');
    assert.equal(run('{{ html .missing }}'), '&lt;no value&gt;');
  });
});

describe('go-template: control structures', () => {
  it('if / else if / else', () => {
    const t = compileTemplate(
      '{{ if eq .p "Critical" }}C{{ else if eq .p "Warning" }}W{{ else }}other{{ end }}',
    );
    assert.equal(t.execute({ p: 'Critical' }), 'C');
    assert.equal(t.execute({ p: 'Warning' }), 'W');
    assert.equal(t.execute({ p: 'Notice' }), 'other');
  });

  it('if uses Go truth', () => {
    const t = compileTemplate('{{ if . }}T{{ else }}F{{ end }}');
    const cases: [unknown, string][] = [
      ['', 'F'],
      ['x', 'T'],
      [0, 'F'],
      [2, 'T'],
      [null, 'F'],
      [undefined, 'F'],
      [[], 'F'],
      [[0], 'T'],
      [{}, 'F'],
      [{ a: 1 }, 'T'],
      [false, 'F'],
      [new ExactNumber('0.0'), 'F'],
      [new ExactNumber('1e400'), 'T'],
    ];
    for (const [value, expected] of cases) assert.equal(t.execute(value), expected, JSON.stringify(value));
    assert.equal(truth(new Date()), true);
  });

  it('with sets dot, with else for empty values', () => {
    assert.equal(run('{{ with index . "k8s.ns.name" }}ns={{ . }}{{ end }}'), 'ns=prod');
    assert.equal(run('{{ with .missing }}x{{ else }}none{{ end }}'), 'none');
    assert.equal(run('{{ with .missing }}x{{ else with .nested.a }}a={{ . }}{{ end }}'), 'a=1');
  });

  it('range over arrays, maps (sorted keys) and integers, with variables and else', () => {
    assert.equal(run('{{ range .list }}<{{ . }}>{{ end }}'), '<a><b><c>');
    assert.equal(run('{{ range $i, $v := .list }}{{ $i }}={{ $v }} {{ end }}'), '0=a 1=b 2=c ');
    assert.equal(run('{{ range $v := .list }}{{ $v }}{{ end }}'), 'abc');
    assert.equal(run('{{ range $k, $v := .nested }}{{ $k }};{{ end }}'), 'a;b;inner;');
    assert.equal(run('{{ range .missing }}x{{ else }}empty{{ end }}'), 'empty');
    assert.equal(run('{{ range 3 }}{{ . }}{{ end }}'), '012');
  });

  it('break and continue inside range', () => {
    assert.equal(run('{{ range .list }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}'), 'ac');
    assert.equal(run('{{ range .list }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}'), 'a');
  });

  it('variables: declaration, assignment across range, scope', () => {
    assert.equal(run('{{ $ns := index . "k8s.ns.name" }}{{ $ns }}/{{ $ns | len }}'), 'prod/4');
    assert.equal(run('{{ $last := "" }}{{ range .list }}{{ $last = . }}{{ end }}{{ $last }}'), 'c');
    assert.equal(run('{{ if $x := .nested.a }}{{ $x }}{{ end }}'), '1');
  });

  it('trims whitespace with {{- and -}}', () => {
    assert.equal(run('a  \n {{- "b" -}} \n\t c'), 'abc');
    assert.equal(run('a {{- "b" }} c'), 'ab c');
    assert.equal(run('a {{ "b" -}} c'), 'a bc');
    assert.equal(run('{{ 3 }} {{-3}}'), '3 -3');
    assert.equal(run('{{ range .list -}}\n  {{ . }}\n{{- end }}'), 'abc');
  });

  it('comments produce nothing and may trim', () => {
    assert.equal(run('a{{/* a comment */}}b'), 'ab');
    assert.equal(run('a {{- /* multi\nline */ -}} b'), 'ab');
  });

  it('actions may span lines', () => {
    assert.equal(run('{{ printf "%s-%s"\n  "a"\n  "b" }}'), 'a-b');
  });

  it('parenthesised pipelines and chains on them', () => {
    assert.equal(run('{{ (index . "nested").inner.x }}'), 'deep');
    assert.equal(run('{{ printf "%s" (print (len .list) "x") }}'), '3x');
  });
});

describe('go-template: compile errors with positions', () => {
  it('unclosed action', () => {
    const err = parseError('ok\n  {{ .x ');
    assert.equal(err.line, 2);
    assert.equal(err.column, 3);
    assert.match(err.message, /^template: field:2:3: unclosed action$/);
  });

  it('unknown function', () => {
    const err = parseError('{{ index . "a" }} {{ lower .x }}');
    assert.equal(err.line, 1);
    assert.equal(err.column, 22);
    assert.equal(err.reason, 'function "lower" not defined');
  });

  it('bad pipelines', () => {
    const literal = parseError('{{ .x | "a" }}');
    assert.equal(literal.reason, 'non executable command in pipeline stage 2');
    assert.equal(literal.column, 9);
    const trailing = parseError('{{ .x | }}');
    assert.match(trailing.reason, /missing command after "\|"/);
    assert.equal(trailing.column, 9);
    const nonFunctionArgs = runtimeError('{{ "a" "b" }}');
    assert.match(nonFunctionArgs.reason, /can't give argument to non-function "a"/);
  });

  it('unbalanced control structures', () => {
    const noEnd = parseError('x{{ if .a }}y');
    assert.equal(noEnd.column, 2);
    assert.match(noEnd.reason, /no matching \{\{end\}\}/);
    assert.equal(parseError('{{ end }}').reason, 'unexpected {{end}}');
    assert.equal(parseError('{{ else }}').reason, 'unexpected {{else}}');
    assert.match(parseError('{{ if 1 }}{{ else }}{{ else }}{{ end }}').reason, /expected \{\{end\}\}/);
    assert.match(parseError('{{ break }}').reason, /outside \{\{range\}\}/);
  });

  it('other syntax errors', () => {
    assert.match(parseError('{{ .proc.aname[2] }}').reason, /bad character U\+005B/);
    assert.equal(parseError('{{ $y }}').reason, 'undefined variable "$y"');
    assert.equal(parseError('{{ $y = 1 }}').reason, 'undefined variable "$y"');
    assert.equal(parseError('{{ (1 }}').reason, 'unclosed left paren');
    assert.equal(parseError('{{ 1) }}').reason, 'unexpected right paren');
    assert.equal(parseError('{{ "abc }}').reason, 'unterminated quoted string');
    assert.match(parseError('{{ "\\q" }}').reason, /invalid syntax/);
    assert.equal(parseError('{{ nil }}').reason, 'nil is not a command');
    assert.equal(parseError('{{ /* x */ }}').reason, 'unexpected "/" in command');
    assert.equal(parseError('{{/* x */ y }}').reason, 'comment ends before closing delimiter');
    assert.equal(parseError('{{/* x').reason, 'unclosed comment');
    assert.equal(parseError('{{ define "x" }}{{ end }}').reason, '{{define}} is not supported');
    assert.equal(parseError('{{ template "x" }}').reason, '{{template}} is not supported');
    assert.equal(parseError('{{ }}').reason, 'missing value for command');
    assert.match(parseError('{{ 1x }}').reason, /bad number syntax/);
    assert.match(parseError('{{ index(.) }}').reason, /unexpected "\(" in operand/);
  });
});

describe('go-template: runtime errors', () => {
  it('index into a non-map', () => {
    const err = runtimeError('before {{ index . "proc.name" "x" }} after');
    assert.equal(err.reason, 'error calling index: cannot index string with type string');
    assert.equal(err.partialOutput, 'before ');
    assert.match(
      err.message,
      /^template: field:1:11: executing "field" at <index \. "proc\.name" "x">: error calling index/,
    );
    assert.equal(
      runtimeError('{{ index 1 "a" }}').reason,
      "error calling index: can't index item of type int",
    );
    assert.equal(runtimeError('{{ index .list 5 }}').reason, 'error calling index: index out of range: 5');
    assert.equal(
      runtimeError('{{ index . "missing" "x" }}').reason,
      'error calling index: index of nil pointer',
    );
  });

  it('field of a non-map, and of a null value', () => {
    assert.equal(runtimeError('{{ .list.x }}').reason, "can't evaluate field x in type []interface {}");
    assert.equal(runtimeError('{{ .nul.x }}').reason, 'nil pointer evaluating interface {}.x');
  });

  it('comparisons of incompatible types', () => {
    assert.equal(
      runtimeError('{{ lt 1 "a" }}').reason,
      'error calling lt: incompatible types for comparison',
    );
    assert.equal(
      runtimeError('{{ eq true 1 }}').reason,
      'error calling eq: incompatible types for comparison',
    );
    assert.equal(runtimeError('{{ lt .missing 1 }}').reason, 'error calling lt: invalid type for comparison');
  });

  it('argument counts and types', () => {
    assert.equal(runtimeError('{{ not 1 2 }}').reason, 'wrong number of args for not: want 1 got 2');
    assert.equal(runtimeError('{{ len 3 }}').reason, 'error calling len: len of type int');
    assert.equal(
      runtimeError('{{ printf 3 }}').reason,
      'error calling printf: wrong type for value; expected string; got int',
    );
    assert.match(runtimeError('{{ range "abc" }}{{ end }}').reason, /range can't iterate over abc/);
    assert.equal(
      runtimeError('{{ .list 1 }}', { list: [1] }).reason,
      'list is not a method but has arguments',
    );
  });

  it('a failure inside range keeps what was written before', () => {
    const err = runtimeError('{{ range .items }}[{{ .name }}]{{ end }}', { items: [{ name: 'a' }, 'str'] });
    assert.equal(err.reason, "can't evaluate field name in type string");
    assert.equal(err.partialOutput, '[a][');
  });
});
