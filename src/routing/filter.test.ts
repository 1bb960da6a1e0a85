import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DestinationFilterConfig } from '../config/types.ts';
import { parseFalcoEvent, testEvent, TEST_RULE, type FalcoEvent } from '../event/falco-event.ts';
import { ExactNumber, type JsonObject } from '../event/json.ts';
import type { Priority } from '../event/priority.ts';
import { exposeGc } from '../../test/helpers/gc.ts';
import {
  celOutputFields,
  compileFilter,
  describeFilter,
  fieldString,
  FilterError,
  globMatch,
} from './filter.ts';

const WHERE = 'destinations[2].filter';

function event(overrides: Partial<FalcoEvent> = {}): FalcoEvent {
  return {
    uuid: '00000000-0000-4000-8000-000000000000',
    output: 'A shell was spawned in a container',
    priority: 'Warning',
    rule: 'Terminal shell in container',
    time: '2026-01-01T09:00:01.000000123Z',
    output_fields: {
      'proc.name': 'bash',
      'k8s.ns.name': 'default',
      'proc.pid': 4242,
      'container.id': null,
    },
    source: 'syscall',
    tags: ['container', 'shell', 'mitre_execution'],
    hostname: 'node-1',
    ...overrides,
  };
}

function fields(extra: JsonObject): FalcoEvent {
  return event({ output_fields: extra });
}

interface Case {
  name: string;
  filter: DestinationFilterConfig;
  event: FalcoEvent;
  expected: boolean;
}

function runCases(cases: Case[]): void {
  for (const c of cases) {
    it(`${c.name} → ${c.expected ? 'passes' : 'is filtered'}`, () => {
      assert.equal(compileFilter(c.filter, WHERE)(c.event), c.expected);
    });
  }
}

describe('compileFilter: basic criteria', () => {
  runCases([
    { name: 'empty filter', filter: {}, event: event(), expected: true },
    {
      name: 'empty lists restrict nothing',
      filter: { rules: [], sources: [], tags: { any: [] } },
      event: event(),
      expected: true,
    },
    {
      name: 'minimum_priority met exactly',
      filter: { minimum_priority: 'Warning' },
      event: event(),
      expected: true,
    },
    {
      name: 'minimum_priority exceeded',
      filter: { minimum_priority: 'Warning' },
      event: event({ priority: 'Critical' }),
      expected: true,
    },
    {
      name: 'minimum_priority not met',
      filter: { minimum_priority: 'Error' },
      event: event(),
      expected: false,
    },
    {
      name: 'minimum_priority lower-case spelling',
      filter: { minimum_priority: 'error' as Priority },
      event: event(),
      expected: false,
    },
    {
      name: 'test rule bypasses minimum_priority',
      filter: { minimum_priority: 'Emergency' },
      event: testEvent(),
      expected: true,
    },
    {
      name: 'test rule does not bypass a rules list',
      filter: { minimum_priority: 'Emergency', rules: ['Terminal shell in container'] },
      event: testEvent(),
      expected: false,
    },
    {
      name: 'non-test Debug event under minimum',
      filter: { minimum_priority: 'Emergency' },
      event: event({ priority: 'Debug' }),
      expected: false,
    },
    {
      name: 'rules exact',
      filter: { rules: ['Other', 'Terminal shell in container'] },
      event: event(),
      expected: true,
    },
    { name: 'rules exact miss', filter: { rules: ['Terminal shell'] }, event: event(), expected: false },
    { name: 'rules glob *', filter: { rules: ['Terminal *'] }, event: event(), expected: true },
    { name: 'rules glob is anchored', filter: { rules: ['shell*'] }, event: event(), expected: false },
    {
      name: 'rules glob ?',
      filter: { rules: ['Terminal shel? in container'] },
      event: event(),
      expected: true,
    },
    {
      name: 'rules glob ? is exactly one char',
      filter: { rules: ['Terminal shel?? in container'] },
      event: event(),
      expected: false,
    },
    {
      name: 'rules are case-sensitive',
      filter: { rules: ['terminal shell in container'] },
      event: event(),
      expected: false,
    },
    {
      name: 'glob ? matches one code point (emoji)',
      filter: { rules: ['Alert ?'] },
      event: event({ rule: 'Alert 🚨' }),
      expected: true,
    },
    {
      name: 'glob * spans newlines',
      filter: { rules: ['a*b'] },
      event: event({ rule: 'a\nb' }),
      expected: true,
    },
    {
      name: 'glob with regex specials matches literally',
      filter: { rules: ['Launch Privileged Container (x*) [y]+.'] },
      event: event({ rule: 'Launch Privileged Container (xyz) [y]+.' }),
      expected: true,
    },
    {
      name: 'glob with regex specials: "." is not a wildcard',
      filter: { rules: ['Launch Privileged Container (x*) [y]+.'] },
      event: event({ rule: 'Launch Privileged Container (xyz) [y]+!' }),
      expected: false,
    },
    {
      name: 'literal with parentheses',
      filter: { rules: ['Launch Privileged Container (x)'] },
      event: event({ rule: 'Launch Privileged Container (x)' }),
      expected: true,
    },
    {
      name: 'literal with parentheses does not act as a group',
      filter: { rules: ['Launch Privileged Container (x)'] },
      event: event({ rule: 'Launch Privileged Container x' }),
      expected: false,
    },
    { name: 'exclude_rules hit', filter: { exclude_rules: ['Terminal*'] }, event: event(), expected: false },
    { name: 'exclude_rules miss', filter: { exclude_rules: ['Other*'] }, event: event(), expected: true },
    {
      name: 'exclude_rules wins over rules',
      filter: { rules: ['*'], exclude_rules: ['Terminal shell in container'] },
      event: event(),
      expected: false,
    },
    { name: 'sources hit', filter: { sources: ['k8s_audit', 'syscall'] }, event: event(), expected: true },
    { name: 'sources miss', filter: { sources: ['k8s_audit'] }, event: event(), expected: false },
    { name: 'sources are exact, not globs', filter: { sources: ['sys*'] }, event: event(), expected: false },
    { name: 'tags.any hit', filter: { tags: { any: ['nope', 'shell'] } }, event: event(), expected: true },
    { name: 'tags.any miss', filter: { tags: { any: ['nope'] } }, event: event(), expected: false },
    {
      name: 'tags.any with no event tags',
      filter: { tags: { any: ['shell'] } },
      event: event({ tags: [] }),
      expected: false,
    },
    {
      name: 'tags.all hit',
      filter: { tags: { all: ['shell', 'container'] } },
      event: event(),
      expected: true,
    },
    {
      name: 'tags.all partial',
      filter: { tags: { all: ['shell', 'nope'] } },
      event: event(),
      expected: false,
    },
    {
      name: 'tags.none hit',
      filter: { tags: { none: ['mitre_execution'] } },
      event: event(),
      expected: false,
    },
    { name: 'tags.none miss', filter: { tags: { none: ['nope'] } }, event: event(), expected: true },
    { name: 'hostnames glob hit', filter: { hostnames: ['node-*'] }, event: event(), expected: true },
    { name: 'hostnames miss', filter: { hostnames: ['db-?'] }, event: event(), expected: false },
    {
      name: 'hostnames with no hostname',
      filter: { hostnames: ['*'] },
      event: event({ hostname: undefined }),
      expected: false,
    },
    {
      name: 'AND: one failing criterion fails the filter',
      filter: { minimum_priority: 'Notice', rules: ['Terminal*'], sources: ['syscall'], hostnames: ['db-*'] },
      event: event(),
      expected: false,
    },
    {
      name: 'AND: all criteria hold',
      filter: {
        minimum_priority: 'Notice',
        rules: ['Terminal*'],
        sources: ['syscall'],
        hostnames: ['node-*'],
        tags: { all: ['shell'] },
      },
      event: event(),
      expected: true,
    },
  ]);
});

const BIG = parseFalcoEvent(
  JSON.stringify({
    rule: 'r',
    priority: 'Notice',
    time: '2026-01-01T09:00:01.000000123Z',
    output: 'o',
  }).replace(
    /}$/,
    ',"output_fields":{"evt.time":1767258001000000123,"ratio":1.0,"pid":1234,"big.neg":-9223372036854775808,"evt.arg.flags":[1,"O_RDONLY",true]}}',
  ),
);

describe('compileFilter: fields', () => {
  it('test fixture keeps evt.time exact', () => {
    assert.ok(BIG.output_fields['evt.time'] instanceof ExactNumber);
  });

  it('a field holding a plain number beyond 2^53 (its text survives a round trip) compares by its text', () => {
    const e = parseFalcoEvent(
      '{"rule":"r","priority":"Notice","time":"2023-11-14T22:13:20Z","output":"o","output_fields":{"evt.time":1700000000000000000}}',
    );
    assert.equal(typeof e.output_fields['evt.time'], 'number');
    const on = (condition: Record<string, unknown>) =>
      compileFilter({ fields: { 'evt.time': condition } }, WHERE)(e);
    assert.equal(on({ equals: '1700000000000000000' }), true);
    assert.equal(on({ in: ['1', '1700000000000000000'] }), true);
    assert.equal(on({ not_in: ['1700000000000000000'] }), false);
    assert.equal(on({ regex: '^17' }), true);
  });
  runCases([
    {
      name: 'equals string',
      filter: { fields: { 'proc.name': { equals: 'bash' } } },
      event: event(),
      expected: true,
    },
    {
      name: 'equals string miss',
      filter: { fields: { 'proc.name': { equals: 'sh' } } },
      event: event(),
      expected: false,
    },
    {
      name: 'equals number vs number',
      filter: { fields: { 'proc.pid': { equals: 4242 } } },
      event: event(),
      expected: true,
    },
    {
      name: 'equals string vs number',
      filter: { fields: { 'proc.pid': { equals: '4242' } } },
      event: event(),
      expected: true,
    },
    {
      name: 'equals number vs string',
      filter: { fields: { x: { equals: 7 } } },
      event: fields({ x: '7' }),
      expected: true,
    },
    {
      name: 'equals boolean',
      filter: { fields: { x: { equals: true } } },
      event: fields({ x: true }),
      expected: true,
    },
    {
      name: 'equals "true" vs boolean',
      filter: { fields: { x: { equals: 'true' } } },
      event: fields({ x: true }),
      expected: true,
    },
    {
      name: 'equals boolean miss',
      filter: { fields: { x: { equals: false } } },
      event: fields({ x: true }),
      expected: false,
    },
    {
      name: 'equals ExactNumber by text',
      filter: { fields: { 'evt.time': { equals: '1767258001000000123' } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'equals ExactNumber off by one',
      filter: { fields: { 'evt.time': { equals: '1767258001000000124' } } },
      event: BIG,
      expected: false,
    },
    {
      name: 'equals ExactNumber keeps "1.0"',
      filter: { fields: { ratio: { equals: '1.0' } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'equals ExactNumber "1.0" is not "1"',
      filter: { fields: { ratio: { equals: '1' } } },
      event: BIG,
      expected: false,
    },
    {
      name: 'equals null vs null',
      filter: { fields: { 'container.id': { equals: null } } },
      event: event(),
      expected: true,
    },
    {
      name: 'equals null vs absent',
      filter: { fields: { nope: { equals: null } } },
      event: event(),
      expected: true,
    },
    {
      name: 'equals null vs value',
      filter: { fields: { 'proc.name': { equals: null } } },
      event: event(),
      expected: false,
    },
    {
      name: 'equals "null" vs null',
      filter: { fields: { 'container.id': { equals: 'null' } } },
      event: event(),
      expected: false,
    },
    {
      name: 'equals "" vs absent',
      filter: { fields: { nope: { equals: '' } } },
      event: event(),
      expected: false,
    },
    {
      name: 'equals on array: any element',
      filter: { fields: { 'evt.arg.flags': { equals: 'O_RDONLY' } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'equals on array: number element',
      filter: { fields: { 'evt.arg.flags': { equals: 1 } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'equals on array: no element',
      filter: { fields: { 'evt.arg.flags': { equals: 'O_WRONLY' } } },
      event: BIG,
      expected: false,
    },
    {
      name: 'equals on empty array',
      filter: { fields: { a: { equals: '' } } },
      event: fields({ a: [] }),
      expected: false,
    },
    {
      name: 'prototype names are not fields',
      filter: { fields: { constructor: { exists: true } } },
      event: event(),
      expected: false,
    },
    {
      name: 'in hit',
      filter: { fields: { 'k8s.ns.name': { in: ['default', 'prod'] } } },
      event: event(),
      expected: true,
    },
    {
      name: 'in miss',
      filter: { fields: { 'k8s.ns.name': { in: ['prod'] } } },
      event: event(),
      expected: false,
    },
    {
      name: 'in with numbers',
      filter: { fields: { 'proc.pid': { in: [1, 4242] } } },
      event: event(),
      expected: true,
    },
    {
      name: 'in on absent',
      filter: { fields: { nope: { in: ['a', ''] } } },
      event: event(),
      expected: false,
    },
    {
      name: 'in on absent, list has null',
      filter: { fields: { nope: { in: ['a', null] } } },
      event: event(),
      expected: true,
    },
    {
      name: 'in on null',
      filter: { fields: { 'container.id': { in: ['a'] } } },
      event: event(),
      expected: false,
    },
    {
      name: 'in on null, list has null',
      filter: { fields: { 'container.id': { in: [null] } } },
      event: event(),
      expected: true,
    },
    {
      name: 'in on array',
      filter: { fields: { 'evt.arg.flags': { in: ['x', 'true'] } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'in on ExactNumber',
      filter: { fields: { 'big.neg': { in: ['-9223372036854775808'] } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'not_in hit',
      filter: { fields: { 'k8s.ns.name': { not_in: ['kube-system'] } } },
      event: event(),
      expected: true,
    },
    {
      name: 'not_in miss',
      filter: { fields: { 'k8s.ns.name': { not_in: ['kube-system', 'default'] } } },
      event: event(),
      expected: false,
    },
    {
      name: 'not_in on absent',
      filter: { fields: { nope: { not_in: ['a'] } } },
      event: event(),
      expected: true,
    },
    {
      name: 'not_in on absent, list has null',
      filter: { fields: { nope: { not_in: ['a', null] } } },
      event: event(),
      expected: false,
    },
    {
      name: 'not_in on null',
      filter: { fields: { 'container.id': { not_in: ['x'] } } },
      event: event(),
      expected: true,
    },
    {
      name: 'not_in on null, list has null',
      filter: { fields: { 'container.id': { not_in: [null] } } },
      event: event(),
      expected: false,
    },
    {
      name: 'not_in on array: one element listed',
      filter: { fields: { 'evt.arg.flags': { not_in: ['O_RDONLY'] } } },
      event: BIG,
      expected: false,
    },
    {
      name: 'not_in on array: none listed',
      filter: { fields: { 'evt.arg.flags': { not_in: ['O_WRONLY'] } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'not_in on empty array',
      filter: { fields: { a: { not_in: ['x'] } } },
      event: fields({ a: [] }),
      expected: true,
    },
    {
      name: 'regex hit (unanchored)',
      filter: { fields: { 'proc.name': { regex: 'as' } } },
      event: event(),
      expected: true,
    },
    {
      name: 'regex anchored miss',
      filter: { fields: { 'proc.name': { regex: '^(sh|zsh)$' } } },
      event: event(),
      expected: false,
    },
    {
      name: 'regex on number',
      filter: { fields: { 'proc.pid': { regex: '^42\\d+$' } } },
      event: event(),
      expected: true,
    },
    {
      name: 'regex on ExactNumber text',
      filter: { fields: { 'evt.time': { regex: '123$' } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'regex on absent',
      filter: { fields: { nope: { regex: '.*' } } },
      event: event(),
      expected: false,
    },
    {
      name: 'regex on null',
      filter: { fields: { 'container.id': { regex: '.*' } } },
      event: event(),
      expected: false,
    },
    {
      name: 'regex on array element',
      filter: { fields: { 'evt.arg.flags': { regex: '^O_' } } },
      event: BIG,
      expected: true,
    },
    {
      name: 'regex on array, no element',
      filter: { fields: { 'evt.arg.flags': { regex: '^W' } } },
      event: BIG,
      expected: false,
    },
    {
      name: 'exists true, present',
      filter: { fields: { 'proc.name': { exists: true } } },
      event: event(),
      expected: true,
    },
    {
      name: 'exists true, absent',
      filter: { fields: { nope: { exists: true } } },
      event: event(),
      expected: false,
    },
    {
      name: 'exists true, null',
      filter: { fields: { 'container.id': { exists: true } } },
      event: event(),
      expected: false,
    },
    {
      name: 'exists false, absent',
      filter: { fields: { nope: { exists: false } } },
      event: event(),
      expected: true,
    },
    {
      name: 'exists false, null',
      filter: { fields: { 'container.id': { exists: false } } },
      event: event(),
      expected: true,
    },
    {
      name: 'exists false, present',
      filter: { fields: { 'proc.name': { exists: false } } },
      event: event(),
      expected: false,
    },
    {
      name: 'exists true on empty string',
      filter: { fields: { a: { exists: true } } },
      event: fields({ a: '' }),
      expected: true,
    },
    {
      name: 'all conditions of a field must hold',
      filter: { fields: { 'proc.name': { exists: true, regex: '^b', not_in: ['bash'] } } },
      event: event(),
      expected: false,
    },
    {
      name: 'all fields must hold',
      filter: { fields: { 'proc.name': { equals: 'bash' }, 'k8s.ns.name': { equals: 'kube-system' } } },
      event: event(),
      expected: false,
    },
    {
      name: 'all fields hold',
      filter: { fields: { 'proc.name': { equals: 'bash' }, 'k8s.ns.name': { not_in: ['kube-system'] } } },
      event: event(),
      expected: true,
    },
  ]);
});

describe('compileFilter: CEL', () => {
  const critical = event({ priority: 'Critical' });
  runCases([
    {
      name: 'priority and tag membership',
      filter: { cel: 'event.priority == "Critical" && "container" in event.tags' },
      event: critical,
      expected: true,
    },
    {
      name: 'priority and tag membership, wrong priority',
      filter: { cel: 'event.priority == "Critical" && "container" in event.tags' },
      event: event(),
      expected: false,
    },
    {
      name: 'priority and tag membership, missing tag',
      filter: { cel: 'event.priority == "Critical" && "container" in event.tags' },
      event: event({ priority: 'Critical', tags: ['host'] }),
      expected: false,
    },
    {
      name: 'output field !=',
      filter: { cel: 'event.output_fields["k8s.ns.name"] != "kube-system"' },
      event: event(),
      expected: true,
    },
    {
      name: 'output field != on kube-system',
      filter: { cel: 'event.output_fields["k8s.ns.name"] != "kube-system"' },
      event: fields({ 'k8s.ns.name': 'kube-system' }),
      expected: false,
    },
    {
      name: 'numeric compare (int)',
      filter: { cel: 'event.output_fields["proc.pid"] > 4000' },
      event: event(),
      expected: true,
    },
    {
      name: 'numeric compare miss',
      filter: { cel: 'event.output_fields["proc.pid"] > 5000' },
      event: event(),
      expected: false,
    },
    {
      name: 'integer fields are CEL ints (arithmetic)',
      filter: { cel: 'event.output_fields["proc.pid"] + 1 == 4243' },
      event: event(),
      expected: true,
    },
    {
      name: 'int vs double compare',
      filter: { cel: 'event.output_fields["proc.pid"] < 4242.5' },
      event: event(),
      expected: true,
    },
    {
      name: 'ExactNumber exact as int',
      filter: { cel: 'event.output_fields["evt.time"] == 1767258001000000123' },
      event: BIG,
      expected: true,
    },
    {
      // 1700000000000000000 survives a Number round trip, so the parser keeps a plain number: still an int.
      name: 'an integer beyond 2^53 that a double holds exactly is a CEL int too',
      filter: {
        cel: 'type(event.output_fields["evt.time"]) == int && event.output_fields["evt.time"] / 1000000000 == 1700000000 && event.output_fields["e"] == 1e21',
      },
      event: parseFalcoEvent(
        '{"rule":"r","priority":"Notice","time":"2023-11-14T22:13:20Z","output":"o","output_fields":{"evt.time":1700000000000000000,"e":1e21}}',
      ),
      expected: true,
    },
    {
      name: 'ExactNumber off by one',
      filter: { cel: 'event.output_fields["evt.time"] > 1767258001000000123' },
      event: BIG,
      expected: false,
    },
    {
      name: 'ExactNumber 1.0 is a double',
      filter: { cel: 'event.output_fields.ratio == 1.0 && type(event.output_fields.ratio) == double' },
      event: BIG,
      expected: true,
    },
    {
      name: 'null field',
      filter: { cel: 'event.output_fields["container.id"] == null' },
      event: event(),
      expected: true,
    },
    {
      name: 'has() on absent field',
      filter: { cel: '!has(event.output_fields.nope)' },
      event: event(),
      expected: true,
    },
    {
      name: 'in on map keys',
      filter: { cel: '"proc.name" in event.output_fields' },
      event: event(),
      expected: true,
    },
    {
      name: 'optional access with default',
      filter: { cel: 'event.output_fields.?nope.orValue("x") == "x"' },
      event: event(),
      expected: true,
    },
    {
      name: 'hostname is "" when absent',
      filter: { cel: 'event.hostname == ""' },
      event: event({ hostname: undefined }),
      expected: true,
    },
    {
      name: 'rule, source, output, time',
      filter: {
        cel: 'event.rule.startsWith("Terminal") && event.source == "syscall" && event.output.contains("shell") && event.time.startsWith("2026-")',
      },
      event: event(),
      expected: true,
    },
    {
      name: 'list field',
      filter: { cel: 'event.output_fields["evt.arg.flags"].exists(f, f == "O_RDONLY")' },
      event: BIG,
      expected: true,
    },
    {
      name: 'CEL ANDed with other criteria',
      filter: { sources: ['k8s_audit'], cel: 'true' },
      event: event(),
      expected: false,
    },
  ]);

  it('a runtime error counts as no match, does not throw, and is reported', () => {
    const errors: Error[] = [];
    const seen: FalcoEvent[] = [];
    const f = compileFilter({ cel: 'event.output_fields["k8s.ns.name"] != "kube-system"' }, WHERE, {
      onError: (err, e) => {
        errors.push(err);
        seen.push(e);
      },
    });
    const missing = fields({ 'proc.name': 'bash' });
    assert.equal(f(missing), false);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /k8s\.ns\.name/);
    assert.equal(seen[0], missing);
    assert.equal(f(event()), true);
    assert.equal(errors.length, 1);
  });

  it('a runtime error reaches onError named by its setting, the library error as cause', () => {
    const errors: Error[] = [];
    const f = compileFilter({ cel: 'event.output_fields["k8s.ns.name"] != "kube-system"' }, WHERE, {
      onError: (err) => errors.push(err),
    });
    assert.equal(f(fields({ 'fd.name': '/etc/shadow' })), false);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /^destinations\[2\]\.filter\.cel: No such key: k8s\.ns\.name/);
    assert.ok(errors[0]!.cause instanceof Error);
    assert.match(errors[0]!.cause.message, /^No such key: k8s\.ns\.name/);
  });

  it('the guarded forms the docs suggest work on dotted keys without an error', () => {
    const errors: Error[] = [];
    const onError = (err: Error) => errors.push(err);
    const absent = fields({ 'fd.name': '/etc/shadow' });
    const system = fields({ 'k8s.ns.name': 'kube-system' });
    for (const cel of [
      '!("k8s.ns.name" in event.output_fields) || event.output_fields["k8s.ns.name"] != "kube-system"',
      'event.output_fields[?"k8s.ns.name"].orValue("") != "kube-system"',
    ]) {
      const f = compileFilter({ cel }, WHERE, { onError });
      assert.deepEqual([f(absent), f(event()), f(system)], [true, true, false], cel);
    }
    const f = compileFilter(
      { cel: '!has(event.output_fields.user) || event.output_fields.user != "root"' },
      WHERE,
      {
        onError,
      },
    );
    assert.deepEqual(
      [f(absent), f(fields({ user: 'bob' })), f(fields({ user: 'root' }))],
      [true, true, false],
    );
    assert.deepEqual(errors, []);
    // has() takes a field selection only, not an index: dotted names need `in` or `[?…]`.
    assert.throws(
      () => compileFilter({ cel: 'has(event.output_fields["k8s.ns.name"])' }, WHERE),
      /destinations\[2\]\.filter\.cel: invalid CEL expression: has\(\) invalid argument/,
    );
  });

  it('a throwing onError does not escape', () => {
    const f = compileFilter({ cel: 'event.output_fields.nope == 1' }, WHERE, {
      onError: () => {
        throw new Error('observer broke');
      },
    });
    assert.equal(f(event()), false);
  });

  it('without onError a runtime error is still just no match', () => {
    assert.equal(compileFilter({ cel: 'event.output_fields.nope == 1' }, WHERE)(event()), false);
  });

  it('a dyn expression returning a non-bool is no match and reported', () => {
    const errors: Error[] = [];
    const f = compileFilter({ cel: 'event.output_fields["proc.name"]' }, WHERE, {
      onError: (err) => errors.push(err),
    });
    assert.equal(f(event()), false);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /destinations\[2\]\.filter\.cel: .*string.*not a bool/);
  });

  it('works across many events', () => {
    const f = compileFilter({ cel: 'event.output_fields["proc.pid"] % 2 == 0' }, WHERE);
    const results = [1, 2, 3, 4].map((pid) => f(fields({ 'proc.pid': pid })));
    assert.deepEqual(results, [false, true, false, true]);
  });

  it('does not keep the last event reachable through its reused view', async () => {
    const collect = exposeGc();
    const f = compileFilter(
      { cel: '"shell" in event.tags && event.output_fields["proc.name"] == "bash" && event.output != ""' },
      WHERE,
    );
    // String-only fields: the view holds the event's own output_fields object, not a converted copy.
    // (The view's `output` is cleared too, but a string cannot be watched with a WeakRef.)
    const refs = ((): WeakRef<object>[] => {
      const e = event({ output_fields: { 'proc.name': 'bash' }, tags: ['shell'], output: 'o'.repeat(64) });
      assert.equal(f(e), true);
      return [new WeakRef(e.tags), new WeakRef(e.output_fields)];
    })();
    // WeakRef targets stay alive until the current job ends.
    await new Promise((resolve) => setImmediate(resolve));
    collect();
    assert.deepEqual(
      refs.map((r) => r.deref()),
      [undefined, undefined],
    );
  });

  it('a "__proto__" output field is an ordinary key', () => {
    const e = parseFalcoEvent(
      '{"rule":"r","priority":"Notice","time":"2026-01-01T00:00:00Z","output_fields":{"__proto__":7,"x":"y"}}',
    );
    const f = compileFilter(
      { cel: 'event.output_fields["__proto__"] == 7 && event.output_fields.x == "y"' },
      WHERE,
    );
    assert.equal(f(e), true);
    assert.equal(Object.getPrototypeOf(celOutputFields(e.output_fields)), Object.prototype);
  });

  it('converts output fields for CEL without touching string-only ones', () => {
    const strings = { a: 'x', b: null, c: ['y'] };
    assert.equal(celOutputFields(strings), strings);
    const converted = celOutputFields({
      n: 5,
      d: 2.5,
      e: new ExactNumber('18446744073709551615'),
      l: [1, 'z'],
    });
    assert.deepEqual({ ...converted }, { n: 5n, d: 2.5, e: 18446744073709551615n, l: [1n, 'z'] });
  });
});

describe('compileFilter: invalid filters name the setting', () => {
  const cases: { name: string; filter: DestinationFilterConfig; path: RegExp }[] = [
    {
      name: 'invalid regex',
      filter: { fields: { 'proc.name': { regex: '([a-z' } } },
      path: /^destinations\[2\]\.filter\.fields\["proc\.name"\]\.regex: invalid regular expression/,
    },
    {
      name: 'CEL syntax error',
      filter: { cel: 'event.rule ==' },
      path: /^destinations\[2\]\.filter\.cel: invalid CEL expression/,
    },
    {
      name: 'CEL unknown variable',
      filter: { cel: 'evt.rule == "x"' },
      path: /^destinations\[2\]\.filter\.cel: invalid CEL expression: .*evt/,
    },
    {
      name: 'CEL unknown event field',
      filter: { cel: 'event.prioirty == "Critical"' },
      path: /^destinations\[2\]\.filter\.cel: .*prioirty/,
    },
    {
      name: 'CEL type error',
      filter: { cel: 'event.priority == 3' },
      path: /^destinations\[2\]\.filter\.cel: invalid CEL expression/,
    },
    {
      name: 'CEL non-bool result',
      filter: { cel: 'event.rule' },
      path: /^destinations\[2\]\.filter\.cel: the expression must return a bool, but returns string/,
    },
    { name: 'empty CEL', filter: { cel: '  ' }, path: /^destinations\[2\]\.filter\.cel: is empty/ },
    {
      name: 'unknown priority',
      filter: { minimum_priority: 'Loud' as Priority },
      path: /^destinations\[2\]\.filter\.minimum_priority: unknown priority "Loud"/,
    },
    {
      name: 'unknown condition',
      filter: { fields: { x: { equal: 'a' } as never } },
      path: /^destinations\[2\]\.filter\.fields\["x"\]\.equal: unknown condition/,
    },
    {
      name: 'unknown filter key',
      filter: { rule: ['a'] } as never,
      path: /^destinations\[2\]\.filter\.rule: unknown filter/,
    },
    {
      name: 'unknown tags key',
      filter: { tags: { some: ['a'] } } as never,
      path: /^destinations\[2\]\.filter\.tags\.some: unknown key/,
    },
    {
      name: 'rules not a list',
      filter: { rules: 'a' } as never,
      path: /^destinations\[2\]\.filter\.rules: must be a list of strings/,
    },
    {
      name: 'in not a list',
      filter: { fields: { x: { in: 'a' } } } as never,
      path: /^destinations\[2\]\.filter\.fields\["x"\]\.in: must be a list/,
    },
    {
      name: 'a number with a fraction, which YAML may have changed (3.10 → 3.1)',
      filter: { fields: { 'container.image.tag': { not_in: ['latest', 3.1] } } },
      path: /^destinations\[2\]\.filter\.fields\["container\.image\.tag"\]\.not_in\[1\]: 3\.1 is how YAML reads this number \(3\.10 reads as 3\.1\), and conditions compare text: quote the value/,
    },
    {
      name: 'a number YAML made infinite (1e999)',
      filter: { fields: { x: { equals: Infinity } } },
      path: /^destinations\[2\]\.filter\.fields\["x"\]\.equals: Infinity is how YAML reads this number/,
    },
    {
      name: 'object in a list',
      filter: { fields: { x: { in: [{}] } } } as never,
      path: /^destinations\[2\]\.filter\.fields\["x"\]\.in\[0\]: must be/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.throws(
        () => compileFilter(c.filter, WHERE),
        (err: unknown) =>
          err instanceof FilterError && c.path.test(err.message) && err.path.startsWith(WHERE),
      );
    });
  }
});

describe('helpers', () => {
  it('fieldString gives the comparison form', () => {
    const table: [Parameters<typeof fieldString>[0], string | undefined][] = [
      ['a', 'a'],
      ['', ''],
      [12, '12'],
      [-0.5, '-0.5'],
      [new ExactNumber('1767258001000000123'), '1767258001000000123'],
      [true, 'true'],
      [false, 'false'],
      [null, undefined],
      [undefined, undefined],
      [[1, new ExactNumber('1.0')], '[1,1.0]'],
      [{ a: 'b' }, '{"a":"b"}'],
    ];
    table.forEach(([value, expected], i) => assert.equal(fieldString(value), expected, `row ${i}`));
  });

  it('globMatch: * any run, ? one character, everything else literal, whole string', () => {
    const table: [string, string, boolean][] = [
      ['a.b(c)[d]{2}+^$|\\/e*f?', 'a.b(c)[d]{2}+^$|\\/eXYZfQ', true],
      ['a.b(c)[d]{2}+^$|\\/e*f?', 'aXb(c)[d]{2}+^$|\\/efQ', false],
      ['*', '', true],
      ['?', '', false],
      ['?', '\u{1F600}', true],
      ['??', '\u{1F600}', false],
      ['a*', 'a', true],
      ['*shell*', 'Terminal shell in container', true],
      ['*shell', 'shell in container', false],
      ['Read*file*', 'Read sensitive file untrusted', true],
      ['a*b*c', 'abcbc', true],
      ['a*b*c', 'abcb', false],
      ['*a*a*a*', 'aa', false],
      ['**x', 'x', true],
      ['abc', 'ABC', false],
    ];
    for (const [glob, value, expected] of table) {
      assert.equal(globMatch(glob, value), expected, `${glob} ~ ${value}`);
    }
  });

  it('globMatch agrees with the anchored regex a glob means, on random globs and values', () => {
    const alphabet = ['a', 'b', '*', '?', '.'];
    let seed = 7;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const text = (len: number, chars: string[]) =>
      Array.from({ length: len }, () => chars[next(chars.length)]).join('');
    for (let i = 0; i < 3000; i++) {
      const glob = text(next(7), alphabet);
      const value = text(next(9), ['a', 'b', '.']);
      const source = Array.from(glob)
        .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.]/, '\\.')))
        .join('');
      assert.equal(globMatch(glob, value), new RegExp(`^${source}$`, 'su').test(value), `${glob} ~ ${value}`);
    }
  });

  it('a many-star glob against a long rule name that does not match returns at once (a regex backtracked for minutes)', () => {
    const e = event({ rule: 'shell'.repeat(200_000), hostname: '-prod-'.repeat(100_000) });
    assert.equal(compileFilter({ rules: ['*shell*container*x'] }, WHERE)(e), false);
    assert.equal(compileFilter({ hostnames: ['*-prod-*-node'] }, WHERE)(e), false);
    assert.equal(compileFilter({ hostnames: ['*-prod-*-'] }, WHERE)(e), true);
  });

  it('a field regex or CEL matches() that backtracks on an attacker-shaped value returns at once (it blocked the event loop for a minute)', () => {
    const words = '^(\\w+\\s?)*$';
    const byRegex = compileFilter({ fields: { 'proc.cmdline': { regex: words } } }, WHERE);
    const byCel = compileFilter(
      { cel: `event.output_fields["proc.cmdline"].matches(${JSON.stringify(words)})` },
      WHERE,
    );
    // 2^27 backtracking steps for V8's default engine; its linear-time fallback gives the same answers.
    const hostile = event({ output_fields: { 'proc.cmdline': `${'a'.repeat(27)}!` } });
    const started = performance.now();
    assert.equal(byRegex(hostile), false);
    assert.equal(byCel(hostile), false);
    const took = performance.now() - started;
    assert.ok(took < 1_000, `took ${Math.round(took)} ms`);
    for (const [cmdline, expected] of [
      ['sh c ls', true],
      ['sh -c ls', false],
    ] as const) {
      const e = event({ output_fields: { 'proc.cmdline': cmdline } });
      assert.equal(byRegex(e), expected, cmdline);
      assert.equal(byCel(e), expected, cmdline);
    }
  });

  it('the test event is the Falcosidekick test rule', () => {
    assert.equal(testEvent().rule, TEST_RULE);
  });
});

describe('describeFilter', () => {
  const table: [DestinationFilterConfig | undefined, string][] = [
    [undefined, 'all events'],
    [{}, 'all events'],
    [{ rules: [], cel: ' ' }, 'all events'],
    [{ minimum_priority: 'Warning' }, 'priority >= Warning'],
    [
      {
        minimum_priority: 'Error',
        rules: ['Terminal*'],
        exclude_rules: ['Noisy'],
        sources: ['syscall'],
        tags: { any: ['a'], all: ['b'], none: ['c'] },
        hostnames: ['node-*'],
        fields: {
          'k8s.ns.name': { not_in: ['kube-system'] },
          'proc.name': { equals: 'bash', regex: '^b', exists: true, in: ['bash', null] },
          'odd name': { exists: false },
        },
        cel: 'event.priority == "Critical"\n  && true',
      },
      'priority >= Error and source in ["syscall"] and rule in ["Terminal*"] and rule not in ["Noisy"] and ' +
        'hostname in ["node-*"] and tags any of ["a"] and tags all of ["b"] and tags none of ["c"] and ' +
        'k8s.ns.name not in ["kube-system"] and proc.name exists and proc.name == "bash" and ' +
        'proc.name in ["bash", null] and proc.name =~ /^b/ and "odd name" absent and ' +
        'cel(event.priority == "Critical" && true)',
    ],
  ];
  for (const [filter, expected] of table) {
    it(expected.slice(0, 40), () => {
      const text = describeFilter(filter);
      assert.equal(text, expected);
      assert.ok(!text.includes('\n'));
    });
  }
});

describe('compileFilter: hot path', () => {
  it('evaluates a full filter 20,000 times with the same answer (reused view)', () => {
    const f = compileFilter(
      {
        minimum_priority: 'Notice',
        rules: ['Terminal*', 'Other'],
        tags: { any: ['shell'] },
        fields: { 'k8s.ns.name': { not_in: ['kube-system'] } },
        cel: 'event.output_fields["proc.pid"] > 1',
      },
      WHERE,
    );
    const e = event();
    const n = 20_000;
    let passed = 0;
    for (let i = 0; i < n; i++) if (f(e)) passed++;
    // Its speed is measured by `npm run bench` (the ingest path); here, that the reused view stays right.
    assert.equal(passed, n);
  });
});
