import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from './registry.ts';
import { FalcoEventsCounter } from './falco-events.ts';
import { SidekickEventCounter } from './sidekick-events.ts';
import { EventCounters } from './event-counters.ts';
import { parseFalcoEvent } from '../event/falco-event.ts';
import { alertWith, generateEvents } from '../../test/helpers/events.ts';
import type { EnrichConfig } from '../config/types.ts';

const enrich: EnrichConfig = {
  custom_fields: { env: 'prod' },
  custom_tags: [],
  templated_fields: { team: '{{ index . "k8s.ns.name" }}' },
  bracket_replacer: '',
  output_field_format: '',
};
const extraLabels = ['proc.pid', 'container.image.repository'];
const NAMES = [
  'falco_events',
  'falcosecurity_falcosidekick_falco_events_total',
  'eyrie_metrics_series_overflow_total',
];

function counters(maxSeries: number) {
  const metrics = new Metrics({ defaultMetrics: false });
  const sidekick = new SidekickEventCounter(metrics, enrich, extraLabels, maxSeries);
  const falco = new FalcoEventsCounter(metrics, extraLabels, maxSeries);
  return { metrics, sidekick, falco, both: new EventCounters(sidekick, falco) };
}

async function exposition(metrics: Metrics): Promise<string> {
  const parts = await Promise.all(NAMES.map((n) => metrics.registry.getSingleMetricAsString(n)));
  return parts.join('\n');
}

const event = alertWith;

// Values that must not share a series: types of one field, absent vs empty, tags, hostnames.
const tricky = [
  event({ 'k8s.ns.name': 'a', 'proc.pid': 1 }),
  event({ 'k8s.ns.name': 'a', 'proc.pid': '1' }),
  event({ 'k8s.ns.name': 'a', 'proc.pid': null }),
  event({ 'k8s.ns.name': 'a' }),
  event({ 'k8s.ns.name': '', 'proc.pid': '' }),
  event({ 'k8s.ns.name': 'a', 'container.image.repository': { nested: [1, 2] } }),
  event({ 'k8s.ns.name': 'a1', 'k8s.pod.name': '' }),
  event({ 'k8s.ns.name': 'a', 'k8s.pod.name': '1' }),
  event({}, { tags: ['container,shell'] }),
  event({}, { tags: [] }),
  event({}, { hostname: undefined }),
  event({}, { hostname: 'unknown' }),
  event({}, { priority: 'debug', source: 'k8s_audit' }),
];

describe('EventCounters', () => {
  it('counts exactly what counting with each counter on its own counts', async () => {
    const corpus = [
      ...generateEvents(300, { seed: 5 }).map((l) => parseFalcoEvent(l)),
      ...generateEvents(50, { seed: 6, edgeCases: true }).flatMap((l) => {
        try {
          return [parseFalcoEvent(l)];
        } catch {
          return [];
        }
      }),
      ...tricky,
      ...tricky,
    ];
    const alone = counters(0);
    const together = counters(0);
    for (const e of corpus) {
      alone.sidekick.count(e);
      alone.falco.count(e);
      together.both.count(e);
    }
    const expected = await exposition(alone.metrics);
    assert.ok((expected.match(/^falco_events\{/gm)?.length ?? 0) > 20);
    assert.equal(await exposition(together.metrics), expected);
  });

  it('writes the labels of both counters in name order, as client_golang does', async () => {
    const { metrics, both } = counters(0);
    both.count(event({ 'k8s.ns.name': 'shop', 'k8s.pod.name': 'web-0', 'proc.pid': '7' }));
    const text = await exposition(metrics);
    assert.match(
      text,
      /^falcosecurity_falcosidekick_falco_events_total\{container_image_repository="",env="prod",hostname="node-1",k8s_ns_name="shop",k8s_pod_name="web-0",priority="4",priority_raw="warning",proc_pid="7",rule="Terminal shell in container",source="syscall",team=""\} 1$/m,
    );
    assert.match(
      text,
      /^falco_events\{container_image_repository="",hostname="node-1",k8s_ns_name="shop",k8s_pod_name="web-0",priority="4",proc_pid="7",rule="Terminal shell in container",source="syscall",tags=",container,shell,"\} 1$/m,
    );
  });

  it("prints the Go tools' empty HELP lines", async () => {
    const { metrics } = counters(0);
    const text = await metrics.registry.metrics();
    for (const name of [
      'falco_events',
      'falcosecurity_falcosidekick_falco_events_total',
      'falcosecurity_falcosidekick_inputs_total',
      'falcosecurity_falcosidekick_outputs_total',
    ])
      assert.match(text, new RegExp(`^# HELP ${name} \n# TYPE ${name} counter$`, 'm'));
  });

  it('keeps series apart whose label values differ only by where a NUL falls', async () => {
    const { metrics, both } = counters(0);
    both.count(event({ 'k8s.ns.name': 'a\u0000b', 'k8s.pod.name': 'c' }));
    both.count(event({ 'k8s.ns.name': 'a', 'k8s.pod.name': 'b\u0000c' }));
    const text = await exposition(metrics);
    for (const name of ['falco_events', 'falcosecurity_falcosidekick_falco_events_total']) {
      const series = text.split('\n').filter((l) => l.startsWith(`${name}{`));
      assert.equal(series.length, 2, `${name}: two series\n${series.join('\n')}`);
      assert.ok(
        series.every((l) => l.endsWith(' 1')),
        series.join('\n'),
      );
    }
  });

  it('cuts label values a sender made huge, so max_series also bounds their memory and /metrics', async () => {
    const { metrics, both } = counters(0);
    const huge = (i: number, char: string) => `${i}-${char.repeat(500_000)}`;
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 3; i++) {
        both.count(
          event(
            { 'k8s.pod.name': huge(i, 'p'), 'container.image.repository': huge(i, 'é') },
            { rule: huge(i, 'r') },
          ),
        );
      }
    }
    const text = await exposition(metrics);
    assert.ok(text.length < 50_000, `exposition of ${text.length} characters`);
    for (const name of ['falco_events', 'falcosecurity_falcosidekick_falco_events_total']) {
      const series = text.split('\n').filter((l) => l.startsWith(`${name}{`));
      assert.equal(series.length, 3, `${name}: one series per rule`);
      assert.ok(
        series.every((l) => l.endsWith(' 2')),
        `${name}: each counted twice`,
      );
      for (const line of series) {
        for (const [, value] of line.matchAll(/="([^"]*)"/g)) {
          assert.ok(
            Buffer.byteLength(value!) <= 1024,
            `${name}: a label of ${Buffer.byteLength(value!)} bytes`,
          );
        }
      }
    }
    assert.match(text, /rule="0-r+\[\.\.\.\]"/);
    assert.equal(/rule="0-(r+)\[/.exec(text)?.[1]?.length, 1024 - '0-[...]'.length);
  });

  it('keeps counting the overflow of a combination past a series cap on every event', async () => {
    const alone = counters(3);
    const together = counters(3);
    for (let round = 0; round < 3; round++) {
      for (const e of tricky) {
        alone.sidekick.count(e);
        alone.falco.count(e);
        together.both.count(e);
      }
    }
    const text = await exposition(together.metrics);
    assert.equal(text, await exposition(alone.metrics));
    // 13 events a round, 3 rounds, 3 series each: the others counted as overflow every time.
    assert.match(text, /eyrie_metrics_series_overflow_total\{metric="falco_events"\} 27\n/);
    assert.match(text, /\{metric="falcosecurity_falcosidekick_falco_events_total"\} 15$/);
  });
});
