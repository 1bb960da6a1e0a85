import type { Counter } from 'prom-client';
import { HotCounter, type CounterHandle } from './hot-counter.ts';
import type { EnrichConfig } from '../config/types.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { sidekickPriorityNumber } from '../event/priority.ts';
import type { Metrics } from './registry.ts';
import { fieldLabelName } from './labels.ts';

const BASE_LABELS = ['hostname', 'rule', 'priority', 'priority_raw', 'source', 'k8s_ns_name', 'k8s_pod_name'];

function stringField(event: FalcoEvent, key: string): string {
  const value = event.output_fields[key];
  return typeof value === 'string' ? value : '';
}

/**
 * Falcosidekick's `falcosecurity_falcosidekick_falco_events_total`: one count per accepted event with
 * its labels, plus one label per customfield, templatedfield and `prometheus.extralabels` entry
 * (dots become `_`; names Prometheus refuses are skipped — Falcosidekick panics on them). Unlike
 * Falcosidekick, rejected events are not counted and non-string k8s fields do not crash.
 */
export class SidekickEventCounter {
  private readonly counter: HotCounter<string>;
  private readonly custom: [label: string, value: string][];
  private readonly templated: [label: string, key: string][];
  private readonly extra: [label: string, key: string][];
  readonly skippedLabels: string[] = [];

  private readonly maxSeries: number;
  private readonly overflow: Counter;
  private readonly labelNames: string[];

  constructor(metrics: Metrics, enrich: EnrichConfig, extraLabels: readonly string[], maxSeries: number) {
    this.maxSeries = maxSeries;
    this.overflow = metrics.seriesOverflow;
    const taken = new Set(BASE_LABELS);
    const label = (key: string): string | undefined => {
      const name = fieldLabelName(key);
      if (name === undefined) {
        this.skippedLabels.push(key);
        return undefined;
      }
      if (taken.has(name)) return undefined;
      taken.add(name);
      return name;
    };
    this.custom = Object.entries(enrich.custom_fields).flatMap(([k, v]) => {
      const name = label(k);
      return name ? [[name, v] as [string, string]] : [];
    });
    this.templated = Object.keys(enrich.templated_fields).flatMap((k) => {
      const name = label(k);
      return name ? [[name, k] as [string, string]] : [];
    });
    this.extra = extraLabels.flatMap((k) => {
      const name = label(k);
      return name ? [[name, k] as [string, string]] : [];
    });
    // client_golang writes labels in name order; the exposition follows the label object's order.
    this.labelNames = [...taken].sort();
    this.counter = new HotCounter({
      name: 'falcosecurity_falcosidekick_falco_events_total',
      help: '', // as Falcosidekick registers it
      labelNames: this.labelNames,
      registers: [metrics.registry],
    });
  }

  /** Output fields the labels read, besides k8s.ns.name and k8s.pod.name (see EventCounters). */
  get labelFields(): string[] {
    return [...this.templated, ...this.extra].map(([, key]) => key);
  }

  count(event: FalcoEvent): void {
    this.handleFor(event)?.inc();
  }

  /** The event's series, or undefined (counted as overflow) when it is new past `max_series`. */
  handleFor(event: FalcoEvent): CounterHandle | undefined {
    const values: Record<string, string> = {
      hostname: event.hostname || 'unknown',
      rule: event.rule,
      priority: String(sidekickPriorityNumber(event.priority)),
      priority_raw: event.priority.toLowerCase(),
      source: event.source,
      k8s_ns_name: stringField(event, 'k8s.ns.name'),
      k8s_pod_name: stringField(event, 'k8s.pod.name'),
    };
    for (const [name, value] of this.custom) values[name] = value;
    for (const [name, key] of this.templated) values[name] = stringField(event, key);
    for (const [name, key] of this.extra) values[name] = stringField(event, key);
    const labels: Record<string, string> = {};
    for (const name of this.labelNames) labels[name] = values[name]!;
    if (this.maxSeries > 0 && this.counter.size >= this.maxSeries && !this.counter.has(labels)) {
      this.overflow.inc({ metric: 'falcosecurity_falcosidekick_falco_events_total' });
      return undefined;
    }
    return this.counter.handle(labels);
  }
}
