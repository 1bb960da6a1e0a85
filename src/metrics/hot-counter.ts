import { Counter } from 'prom-client';
import { TRUNCATE_MARK, utf8Prefix } from '../enrich/enrich.ts';

export interface CounterHandle {
  inc(n?: number): void;
}

interface Series<L extends string> extends CounterHandle {
  labels: Record<L, string>;
  value: number;
  reported: number;
}

/**
 * Appends a value to a series key, length-prefixed so that no two lists of values give the same key
 * (a separator could occur in a value: a NUL in a Falco field would merge two series).
 */
export function keyPart(key: string, value: string): string {
  return `${key}${value.length}:${value}`;
}

/**
 * Longest label value a series keeps, in UTF-8 bytes; a longer one is cut to fit, ending in `[...]`
 * as a truncated field does. Label values come from alerts (a rule, a hostname, an output field),
 * which a sender shapes: `max_series` bounds the number of series, this their size. Without it, 200
 * events with distinct 500 kB rules held 1.2 GB and made /metrics 200 MB long (4.5 s of blocked event
 * loop per scrape). Mimir and Cortex refuse label values over 2048 bytes by default; real Falco
 * values (rules, Kubernetes names, paths) are far shorter.
 */
export const MAX_LABEL_VALUE_BYTES = 1024;

/** The value as a label keeps it (see MAX_LABEL_VALUE_BYTES). */
function boundedLabelValue(value: string): string {
  // A UTF-16 unit takes at most 3 UTF-8 bytes: most values need no byte count.
  if (
    value.length <= MAX_LABEL_VALUE_BYTES / 3 ||
    Buffer.byteLength(value, 'utf8') <= MAX_LABEL_VALUE_BYTES
  ) {
    return value;
  }
  return utf8Prefix(value, MAX_LABEL_VALUE_BYTES - TRUNCATE_MARK.length) + TRUNCATE_MARK;
}

function boundedLabels<L extends string>(labels: Record<L, string>): Record<L, string> {
  let bounded: Record<L, string> | undefined;
  for (const name in labels) {
    const value = labels[name];
    const cut = boundedLabelValue(value);
    if (cut !== value) {
      bounded ??= { ...labels };
      bounded[name] = cut;
    }
  }
  return bounded ?? labels;
}

/**
 * A prom-client Counter for hot paths: increments are plain additions on a per-series handle, and
 * prom-client only sees them at scrape time (its `inc` hashes the label object on every call, which
 * cost more than parsing an event). Series appear at 0 as soon as a handle exists.
 */
export class HotCounter<L extends string> {
  readonly metric: Counter<L>;
  private readonly labelNames: readonly L[];
  private readonly series = new Map<string, Series<L>>();

  constructor(config: {
    name: string;
    /** '' prints an empty HELP line, as the Go tools' counters have. */
    help: string;
    labelNames: readonly L[];
    registers: NonNullable<ConstructorParameters<typeof Counter>[0]['registers']>;
  }) {
    const series = this.series;
    this.labelNames = config.labelNames;
    this.metric = new Counter<L>({
      ...config,
      help: config.help === '' ? config.name : config.help,
      collect() {
        for (const s of series.values()) {
          if (s.value !== s.reported) {
            this.inc(s.labels, s.value - s.reported);
            s.reported = s.value;
          }
        }
      },
    });
    // The Go tools register these counters without help text ('# HELP name '); prom-client insists
    // on one at construction only, so it is cleared afterwards.
    if (config.help === '') (this.metric as unknown as { help: string }).help = '';
  }

  /** Number of label series. */
  get size(): number {
    return this.series.size;
  }

  has(labels: Record<L, string>): boolean {
    return this.series.has(this.key(boundedLabels(labels)));
  }

  private key(labels: Record<L, string>): string {
    let key = '';
    for (const name of this.labelNames) key = keyPart(key, labels[name]);
    return key;
  }

  /** The handle of one label series; keep it for labels that never change. */
  handle(unbounded: Record<L, string>): CounterHandle {
    const labels = boundedLabels(unbounded);
    const key = this.key(labels);
    let s = this.series.get(key);
    if (s === undefined) {
      const created: Series<L> = {
        labels: { ...labels },
        value: 0,
        reported: 0,
        inc(n = 1) {
          created.value += n;
        },
      };
      s = created;
      this.series.set(key, s);
      this.metric.inc(labels, 0);
    }
    return s;
  }

  inc(labels: Record<L, string>, n = 1): void {
    this.handle(labels).inc(n);
  }
}
