import { Counter } from 'prom-client';

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
    return this.series.has(this.key(labels));
  }

  private key(labels: Record<L, string>): string {
    let key = '';
    for (const name of this.labelNames) key = keyPart(key, labels[name]);
    return key;
  }

  /** The handle of one label series; keep it for labels that never change. */
  handle(labels: Record<L, string>): CounterHandle {
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
