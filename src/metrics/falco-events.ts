import type { Counter } from 'prom-client';
import { HotCounter, type CounterHandle } from './hot-counter.ts';
import type { FalcoEvent } from '../event/falco-event.ts';
import { stringifyJson } from '../event/json.ts';
import { falcoPriorityNumber } from '../event/priority.ts';
import type { Metrics } from './registry.ts';
import { fieldLabelName } from './labels.ts';

const NAME = 'falco_events';
const BASE_LABELS = ['hostname', 'k8s_ns_name', 'k8s_pod_name', 'priority', 'rule', 'source', 'tags'];

/**
 * falco-exporter's rule for an output field as a label: `""` when the rule's output does not have
 * the field, `"<NA>"` when it has it without a value (JSON null; gRPC already says `<NA>`).
 */
function exporterFieldValue(event: FalcoEvent, key: string): string {
  const value = event.output_fields[key];
  if (value === undefined) return '';
  if (value === null) return '<NA>';
  return typeof value === 'string' ? value : stringifyJson(value);
}

/**
 * falco-exporter's `falco_events` counter, so its dashboards and alerts keep working for every Falco
 * version: no `_total` suffix, an empty HELP, Falco's priority numbers ("0" emergency … "7" debug),
 * tags as `,a,b,`. Labels are written in name order, as client_golang does. `metrics.extra_labels`
 * add one label per output field; series beyond `metrics.max_series` are counted as overflow.
 */
export class FalcoEventsCounter {
  private readonly counter: HotCounter<string>;
  private readonly extra: [label: string, key: string][];
  private readonly labelNames: string[];
  private readonly maxSeries: number;
  private readonly overflow: Counter;
  readonly skippedLabels: string[] = [];

  constructor(metrics: Metrics, extraLabels: readonly string[], maxSeries: number) {
    this.maxSeries = maxSeries;
    this.overflow = metrics.seriesOverflow;
    const taken = new Set(BASE_LABELS);
    this.extra = [];
    for (const key of extraLabels) {
      const name = fieldLabelName(key);
      if (name === undefined) this.skippedLabels.push(key);
      else if (!taken.has(name)) {
        taken.add(name);
        this.extra.push([name, key]);
      }
    }
    this.labelNames = [...taken].sort();
    this.counter = new HotCounter({
      name: NAME,
      help: '', // falco-exporter registers it without help text
      labelNames: this.labelNames,
      registers: [metrics.registry],
    });
  }

  /** Output fields the labels read, besides k8s.ns.name and k8s.pod.name (see EventCounters). */
  get labelFields(): string[] {
    return this.extra.map(([, key]) => key);
  }

  count(event: FalcoEvent): void {
    this.handleFor(event)?.inc();
  }

  /** The event's series, or undefined (counted as overflow) when it is new past `max_series`. */
  handleFor(event: FalcoEvent): CounterHandle | undefined {
    const values: Record<string, string> = {
      hostname: event.hostname ?? '',
      k8s_ns_name: exporterFieldValue(event, 'k8s.ns.name'),
      k8s_pod_name: exporterFieldValue(event, 'k8s.pod.name'),
      priority: String(falcoPriorityNumber(event.priority)),
      rule: event.rule,
      source: event.source,
      tags: `,${event.tags.join(',')},`,
    };
    // Insertion order is exposition order: the base labels above are already in name order; extra
    // labels need the object rebuilt in name order.
    let labels = values;
    if (this.extra.length > 0) {
      for (const [name, key] of this.extra) values[name] = exporterFieldValue(event, key);
      labels = {};
      for (const name of this.labelNames) labels[name] = values[name]!;
    }
    if (this.maxSeries > 0 && this.counter.size >= this.maxSeries && !this.counter.has(labels)) {
      this.overflow.inc({ metric: NAME });
      return undefined;
    }
    return this.counter.handle(labels);
  }
}
