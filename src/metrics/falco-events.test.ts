import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from './registry.ts';
import { FalcoEventsCounter } from './falco-events.ts';
import { alertWith } from '../../test/helpers/events.ts';

const event = alertWith;

async function exposition(metrics: Metrics): Promise<string> {
  return (await metrics.registry.getSingleMetricAsString('falco_events')) + '\n';
}

describe('falco_events (falco-exporter compatible)', () => {
  it('prints falco-exporter’s name, empty help, labels in name order, Falco’s priority numbers', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const counter = new FalcoEventsCounter(metrics, [], 0);
    counter.count(event({ 'k8s.ns.name': 'default', 'k8s.pod.name': null }));
    counter.count(event({ 'k8s.ns.name': 'default', 'k8s.pod.name': null }));
    counter.count(event({}, { priority: 'emergency', tags: [], hostname: undefined, source: 'k8s_audit' }));
    counter.count(event({}, { priority: 'debug', rule: 'Falco internal: "x" \\ y\nz', source: 'internal' }));
    assert.equal(
      await exposition(metrics),
      [
        '# HELP falco_events ',
        '# TYPE falco_events counter',
        'falco_events{hostname="node-1",k8s_ns_name="default",k8s_pod_name="<NA>",priority="4",rule="Terminal shell in container",source="syscall",tags=",container,shell,"} 2',
        'falco_events{hostname="",k8s_ns_name="",k8s_pod_name="",priority="0",rule="Terminal shell in container",source="k8s_audit",tags=",,"} 1',
        'falco_events{hostname="node-1",k8s_ns_name="",k8s_pod_name="",priority="7",rule="Falco internal: \\"x\\" \\\\ y\\nz",source="internal",tags=",container,shell,"} 1',
        '',
      ].join('\n'),
    );
  });

  it('numbers every priority as Falco does, 0 emergency to 7 debug (info is 6)', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const counter = new FalcoEventsCounter(metrics, [], 0);
    const names = ['Emergency', 'alert', 'CRITICAL', 'Error', 'warning', 'Notice', 'info', 'Debug'];
    for (const priority of names) counter.count(event({}, { priority }));
    const text = await exposition(metrics);
    for (let n = 0; n < 8; n++) assert.match(text, new RegExp(`priority="${n}"`));
    assert.equal(text.match(/^falco_events\{/gm)?.length, 8);
  });

  it('adds extra labels from output fields, with the same absent/null rules, and skips bad names', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const counter = new FalcoEventsCounter(metrics, ['container.image.repository', 'proc.pid', '0bad'], 0);
    assert.deepEqual(counter.skippedLabels, ['0bad']);
    counter.count(event({ 'container.image.repository': 'nginx', 'proc.pid': 42 }));
    counter.count(event({ 'container.image.repository': null }));
    const text = await exposition(metrics);
    assert.match(text, /container_image_repository="nginx",hostname="node-1",.*proc_pid="42",rule=/);
    assert.match(text, /container_image_repository="<NA>",.*proc_pid="",rule=/);
  });

  it('stops creating series at metrics.max_series and counts the overflow', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const counter = new FalcoEventsCounter(metrics, [], 3);
    for (let i = 0; i < 10; i++) counter.count(event({ 'k8s.pod.name': `pod-${i}` }));
    counter.count(event({ 'k8s.pod.name': 'pod-0' }));
    const text = await exposition(metrics);
    assert.equal(text.match(/^falco_events\{/gm)?.length, 3);
    assert.match(text, /k8s_pod_name="pod-0".* 2$/m);
    const overflow = await metrics.registry.getSingleMetricAsString('eyrie_metrics_series_overflow_total');
    assert.match(overflow, /eyrie_metrics_series_overflow_total\{metric="falco_events"\} 7/);
  });
});
