import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createEnricher, EnrichConfigError, utf8Prefix } from './enrich.ts';
import type { EnrichConfig } from '../config/types.ts';
import { parseFalcoEvent, type FalcoEvent } from '../event/falco-event.ts';
import { ExactNumber } from '../event/json.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';

function config(overrides: Partial<EnrichConfig> = {}): EnrichConfig {
  return {
    custom_fields: {},
    custom_tags: [],
    templated_fields: {},
    bracket_replacer: '',
    output_field_format: '',
    ...overrides,
  };
}

const FALCO_OUTPUT = '17:05:51.123456789: Warning Shell spawned in a container (user=root shell=bash)';

function event(overrides: Record<string, unknown> = {}): FalcoEvent {
  const base = {
    uuid: '0d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
    output: FALCO_OUTPUT,
    priority: 'Warning',
    rule: 'Terminal shell in container',
    time: '2025-04-07T04:26:40.123456789Z',
    output_fields: { 'evt.time': 1, 'k8s.ns.name': 'prod', 'proc.name': 'bash', env: 'old' },
    source: 'syscall',
    tags: ['container', 'shell'],
    hostname: 'node-1',
    ...overrides,
  };
  // evt.time as Falco sends it: a 64-bit integer that a JS number would round.
  return parseFalcoEvent(JSON.stringify(base).replace('"evt.time":1', '"evt.time":1744000000123456789'));
}

describe('enrich: empty config', () => {
  it('returns the very same event, untouched', () => {
    const enrich = createEnricher(config());
    const e = event();
    const before = JSON.stringify(e);
    const result = enrich(e);
    assert.equal(result.event, e);
    assert.equal(result.event.output_fields, e.output_fields);
    assert.deepEqual(result.warnings, []);
    assert.equal(result.counted, e);
    assert.equal(JSON.stringify(e), before);
  });

  it('still sorts unsorted tags (Falcosidekick always does), without touching the input', () => {
    const e = event({ tags: ['shell', 'T1059', 'container'] });
    const result = createEnricher(config())(e);
    assert.deepEqual(result.event.tags, ['T1059', 'container', 'shell']);
    assert.deepEqual(e.tags, ['shell', 'T1059', 'container']);
    assert.equal(result.event.output_fields, e.output_fields);
  });

  it('sorts tags by UTF-8 bytes as Go does, also when they are in UTF-16 order already', () => {
    const e = event({ tags: ['\u{1F600}', '\uE000'] });
    assert.deepEqual(createEnricher(config())(e).event.tags, ['\uE000', '\u{1F600}']);
  });
});

describe('enrich: custom fields and tags', () => {
  it('merges custom fields into output_fields, overwriting, without mutating the input', () => {
    const e = event();
    const result = createEnricher(config({ custom_fields: { env: 'prod', cluster: 'eu-1' } }))(e);
    assert.equal(result.event.output_fields.env, 'prod');
    assert.equal(result.event.output_fields.cluster, 'eu-1');
    assert.equal(result.event.output_fields['proc.name'], 'bash');
    assert.equal(e.output_fields.env, 'old');
    assert.equal(e.output_fields.cluster, undefined);
    assert.notEqual(result.event, e);
    assert.equal(result.counted, result.event);
  });

  it('creates output_fields entries even when the event has none', () => {
    const e = event({ output_fields: {} });
    const result = createEnricher(config({ custom_fields: { a: '1' } }))(e);
    assert.deepEqual(result.event.output_fields, { a: '1' });
  });

  it('appends custom tags, then sorts all tags', () => {
    const e = event({ tags: ['shell', 'container'] });
    const result = createEnricher(config({ custom_tags: ['zeta', 'Alpha', 'mitre'] }))(e);
    assert.deepEqual(result.event.tags, ['Alpha', 'container', 'mitre', 'shell', 'zeta']);
    assert.deepEqual(e.tags, ['shell', 'container']);
  });

  it('keeps an ExactNumber value (and its exact JSON text) untouched', () => {
    const e = event();
    const exact = e.output_fields['evt.time'];
    assert.ok(exact instanceof ExactNumber);
    const result = createEnricher(
      config({ custom_fields: { a: '1' }, custom_tags: ['x'], bracket_replacer: '_' }),
    )(e);
    assert.equal(result.event.output_fields['evt.time'], exact);
    assert.match(toSidekickJson(result.event), /"evt\.time":1744000000123456789,/);
  });

  it('a key named __proto__ becomes a plain field, not a prototype', () => {
    const result = createEnricher(config({ custom_fields: { ['__proto__']: 'x' } }))(event());
    assert.equal(Object.getPrototypeOf(result.event.output_fields), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(result.event.output_fields, '__proto__')?.value, 'x');
  });
});

describe('enrich: templated fields', () => {
  it('runs templates over output_fields (custom fields included) and stores strings', () => {
    const enrich = createEnricher(
      config({
        custom_fields: { team: 'sec' },
        templated_fields: {
          owner: '{{ index . "team" }}-{{ index . "k8s.ns.name" }}',
          pod: '{{ or (index . "k8s.pod.name") "none" }}',
          time: '{{ index . "evt.time" }}',
        },
      }),
    );
    const result = enrich(event());
    assert.equal(result.event.output_fields.owner, 'sec-prod');
    assert.equal(result.event.output_fields.pod, 'none');
    assert.equal(result.event.output_fields.time, '1744000000123456789');
    assert.equal(result.counted, result.event);
    assert.deepEqual(result.warnings, []);
  });

  it('runs in config order: a template sees the templated fields before it', () => {
    const result = createEnricher(config({ templated_fields: { first: 'A', second: '{{ .first }}B' } }))(
      event(),
    );
    assert.equal(result.event.output_fields.second, 'AB');
  });

  it('a missing key renders <no value>, like Go', () => {
    const result = createEnricher(config({ templated_fields: { x: '{{ .missing }}' } }))(event());
    assert.equal(result.event.output_fields.x, '<no value>');
  });

  it('keeps the partial output of a failing template and warns', () => {
    const result = createEnricher(
      config({
        templated_fields: { broken: 'ns={{ index . "k8s.ns.name" }} {{ index . "proc.name" "x" }}!' },
      }),
    )(event());
    assert.equal(result.event.output_fields.broken, 'ns=prod ');
    assert.equal(result.warnings.length, 1);
    assert.match(
      result.warnings[0]!,
      /^templated field "broken": template: broken:1:35: executing "broken" .*cannot index string/,
    );
    assert.equal(result.counted.output_fields.broken, 'ns=prod ');
  });

  it('a template that does not compile is a startup error naming the field', () => {
    assert.throws(
      () => createEnricher(config({ templated_fields: { ok: '{{ .a }}', 'k8s.team': '{{ lower .x }}' } })),
      (err: unknown) => {
        assert.ok(err instanceof EnrichConfigError);
        assert.equal(err.field, 'k8s.team');
        assert.equal(
          err.message,
          'enrich.templated_fields["k8s.team"]: template: k8s.team:1:4: function "lower" not defined',
        );
        return true;
      },
    );
  });
});

describe('enrich: bracket replacer', () => {
  it('renames keys with brackets', () => {
    const e = event({
      output_fields: { 'proc.aname[2]': 'bash', 'proc.aname[3]': 'sh', 'proc.name': 'bash' },
    });
    const result = createEnricher(config({ bracket_replacer: '_' }))(e);
    assert.deepEqual(result.event.output_fields, {
      'proc.name': 'bash',
      'proc.aname_2': 'bash',
      'proc.aname_3': 'sh',
    });
    assert.equal(e.output_fields['proc.aname[2]'], 'bash');
  });

  it('a renamed key overwrites an existing key of the same name, whatever the order', () => {
    const e = event({ output_fields: { 'a[1]': 'from-bracket', a_1: 'plain' } });
    assert.deepEqual(createEnricher(config({ bracket_replacer: '_' }))(e).event.output_fields, {
      a_1: 'from-bracket',
    });
  });

  it('takes the replacer literally (no $& patterns)', () => {
    const e = event({ output_fields: { 'x[0]': 1 } });
    assert.deepEqual(createEnricher(config({ bracket_replacer: '$&' }))(e).event.output_fields, {
      'x$&0': 1,
    });
  });

  it('is off when empty, and leaves keys without brackets alone', () => {
    const e = event({ output_fields: { 'proc.aname[2]': 'bash' } });
    assert.deepEqual(createEnricher(config({ custom_tags: ['x'] }))(e).event.output_fields, {
      'proc.aname[2]': 'bash',
    });
    const plain = event();
    const result = createEnricher(config({ bracket_replacer: '_' }))(plain);
    assert.equal(result.event, plain);
  });

  it('templates and labels see the keys before replacement', () => {
    const e = event({ output_fields: { 'proc.aname[2]': 'init' } });
    const result = createEnricher(
      config({ bracket_replacer: '_', templated_fields: { parent: '{{ index . "proc.aname[2]" }}' } }),
    )(e);
    assert.equal(result.event.output_fields.parent, 'init');
    assert.equal(result.event.output_fields['proc.aname_2'], 'init');
    // Falcosidekick counts its metrics before the replacement.
    assert.deepEqual(result.counted.output_fields, { 'proc.aname[2]': 'init', parent: 'init' });
    assert.equal(e.output_fields['proc.aname_2'], undefined);
  });
});

describe('enrich: output_field_format', () => {
  const all = '<timestamp> <priority> <output> (<custom_fields>) (<templated_fields>) [<tags>]';

  it('fills every placeholder', () => {
    const enrich = createEnricher(
      config({
        output_field_format: all,
        custom_fields: { b: '2', a: '1' },
        custom_tags: ['extra'],
        templated_fields: { ns: '{{ index . "k8s.ns.name" }}' },
      }),
    );
    const result = enrich(event());
    assert.equal(
      result.event.output,
      '17:05:51.123456789 Warning Shell spawned in a container (user=root shell=bash) (b=2 a=1) (ns=prod) [container,extra,shell]',
    );
  });

  it('leaves placeholders in the alert text and in field values as they are (Go expanded them)', () => {
    const enrich = createEnricher(
      config({
        output_field_format: all,
        custom_fields: { a: '<tags>' },
        templated_fields: { cmd: '{{ index . "proc.cmdline" }}' },
      }),
    );
    const text = (cmdline: string) =>
      enrich(
        event({
          output: `17:05:51.1: Warning cmdline=${cmdline}`,
          output_fields: { 'proc.cmdline': cmdline },
        }),
      ).event.output;
    assert.equal(
      text('<tags> <custom_fields>'),
      '17:05:51.1 Warning cmdline=<tags> <custom_fields> (a=<tags>) (cmd=<tags> <custom_fields>) [container,shell]',
    );
    // Expanded, 25,000 placeholders times a 500 kB field were past V8's string limit: the event failed.
    const result = text(`${'<templated_fields>'.repeat(25_000)}${'A'.repeat(500_000)}`);
    assert.ok(result.length < 2_000_000, `${result.length} characters`);
  });

  it('uses the event priority, Title-cased, not the text in output', () => {
    const e = event({ output: '17:05:51.1: warning hello', priority: 'critical' });
    assert.equal(
      createEnricher(config({ output_field_format: '<priority>|<output>' }))(e).event.output,
      'Critical|hello',
    );
  });

  it('trims a trailing " ", "( )", "()" and " "', () => {
    const e = event({ tags: [] });
    const run = (format: string) => createEnricher(config({ output_field_format: format }))(e).event.output;
    const text = 'Shell spawned in a container (user=root shell=bash)';
    assert.equal(run('<output> (<custom_fields>)'), text);
    assert.equal(run('<output> (<custom_fields> <templated_fields>)'), text);
    assert.equal(run('<output> <tags>'), text);
    assert.equal(run('<output> <tags>  '), `${text} `);
    assert.equal(run('<timestamp>: <output> [<tags>]'), `17:05:51.123456789: ${text} []`);
  });

  it('leaves output alone when it is not in Falco form', () => {
    const run = (output: string) =>
      createEnricher(config({ output_field_format: '<priority>: <output>' }))(event({ output })).event.output;
    assert.equal(run('Shell spawned (user=root)'), 'Shell spawned (user=root)');
    assert.equal(
      run('2025-04-07T04:26:40.123456789+0000: Warning Shell'),
      '2025-04-07T04:26:40.123456789+0000: Warning Shell',
    );
    assert.equal(run('17:05:51.123: Bogus Shell'), '17:05:51.123: Bogus Shell');
    assert.equal(run('17:05:51.123: Warning Shell'), 'Warning: Shell');
  });

  it('is off when empty', () => {
    const e = event();
    assert.equal(createEnricher(config({ custom_tags: ['x'] }))(e).event.output, FALCO_OUTPUT);
  });
});

describe('enrich: truncation', () => {
  // Builds an event whose Falcosidekick JSON is exactly `total` bytes, padding with the rule name.
  function sized(total: number, extra: Record<string, unknown>, output = 'short'): FalcoEvent {
    const fields = { 'evt.time': 1, ...extra };
    const probe = event({ rule: 'r', output, output_fields: fields });
    const size = Buffer.byteLength(toSidekickJson(probe), 'utf8');
    assert.ok(size <= total, `base event is ${size} bytes`);
    return event({ rule: 'r'.repeat(total - size + 1), output, output_fields: fields });
  }

  it('cuts string fields over 512 bytes to 507 + [...] when the event is over 4096 bytes', () => {
    const long = 'x'.repeat(600);
    const e = sized(4097, { long, exact512: 'y'.repeat(512), n: 7 });
    assert.equal(Buffer.byteLength(toSidekickJson(e)), 4097);
    const result = createEnricher(config())(e);
    assert.equal(result.event.output_fields.long, 'x'.repeat(507) + '[...]');
    assert.equal(result.event.output_fields.exact512, 'y'.repeat(512));
    assert.equal(result.event.output_fields.n, 7);
    assert.equal(e.output_fields.long, long);
    // Metric labels read the whole value, as Falcosidekick's do (it counts before truncating).
    assert.equal(result.counted, e);
  });

  it('counted keeps the full values when custom fields gave the enricher its own copy', () => {
    const long = 'x'.repeat(600);
    const e = sized(4200, { long });
    const result = createEnricher(config({ custom_fields: { env: 'prod' } }))(e);
    assert.equal(result.event.output_fields.long, 'x'.repeat(507) + '[...]');
    assert.equal(result.counted.output_fields.long, long);
    assert.equal(result.counted.output_fields.env, 'prod');
    assert.equal(e.output_fields.env, undefined);
  });

  it('does nothing at exactly 4096 bytes', () => {
    const e = sized(4096, { long: 'x'.repeat(600) });
    assert.equal(Buffer.byteLength(toSidekickJson(e)), 4096);
    const result = createEnricher(config())(e);
    assert.equal(result.event, e);
  });

  it('cuts a 513-byte field', () => {
    const e = sized(5000, { f: 'z'.repeat(513) });
    assert.equal(createEnricher(config())(e).event.output_fields.f, 'z'.repeat(507) + '[...]');
  });

  it('replaces the same text inside output', () => {
    const long = 'cmd '.repeat(150);
    const e = sized(
      4500,
      { 'proc.cmdline': long },
      `17:05:51.1: Warning Shell (cmdline=${long}) again ${long}`,
    );
    const result = createEnricher(config())(e);
    const cut = long.slice(0, 507) + '[...]';
    assert.equal(result.event.output, `17:05:51.1: Warning Shell (cmdline=${cut}) again ${cut}`);
  });

  it('measures UTF-8 bytes and cuts between whole characters', () => {
    const e = sized(4500, { accents: 'é'.repeat(300), short: 'é'.repeat(256) });
    const result = createEnricher(config())(e);
    // 600 bytes: keep 253 × 2 = 506 bytes (254 would be 508 > 507).
    assert.equal(result.event.output_fields.accents, 'é'.repeat(253) + '[...]');
    assert.equal(result.event.output_fields.short, 'é'.repeat(256)); // 512 bytes: not over
    assert.equal(utf8Prefix('a😀b', 4), 'a');
    assert.equal(utf8Prefix('a😀b', 5), 'a😀');
  });

  it('leaves non-string values and ExactNumbers alone', () => {
    const e = sized(6000, { arr: ['x'.repeat(600)], long: 'x'.repeat(600) });
    const exact = e.output_fields['evt.time'];
    const result = createEnricher(config())(e);
    assert.deepEqual(result.event.output_fields.arr, ['x'.repeat(600)]);
    assert.equal(result.event.output_fields['evt.time'], exact);
  });

  it('applies after custom fields and templates (their values are cut too)', () => {
    const e = sized(4000, { a: 'a' });
    const result = createEnricher(config({ custom_fields: { big: 'b'.repeat(700) } }))(e);
    assert.equal(result.event.output_fields.big, 'b'.repeat(507) + '[...]');
    assert.equal(result.counted.output_fields.big, 'b'.repeat(700));
  });
});
