import { PRIORITIES } from '../src/event/priority.ts';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { tempDir, writeConfig } from './helpers/config-file.ts';
import { sleep } from './helpers/delivery.ts';
import { generateEvents } from './helpers/events.ts';
import { spawnEyrie, type EyrieProcess } from './helpers/eyrie-process.ts';
import {
  prometheusInstalled,
  promtool,
  splitOr,
  splitThreshold,
  startPrometheus,
  stopProcess,
  type PrometheusServer,
  type Sample,
} from './helpers/prometheus.ts';
import { startRecordingServer, type RecordingServer } from './helpers/recording-server.ts';

/**
 * The shipped Grafana dashboards and Prometheus rules against a real Prometheus scraping a real
 * Eyrie: every query must be valid and return data. The setup makes every condition they watch
 * happen: deliveries that succeed, retry, go to dead letters and are dropped by a queue cap, a CEL
 * filter that fails, events
 * of every priority, series past metrics.max_series, and 503s from a second Eyrie over its disk cap.
 */

const deploy = (path: string) => fileURLToPath(new URL(`../deploy/${path}`, import.meta.url));
const DASHBOARDS = ['grafana/falco-events.json', 'grafana/eyrie-operations.json'];
const RULE_FILES = ['prometheus/falco-events-rules.yaml', 'prometheus/eyrie-rules.yaml'];
const SCRAPE_EXAMPLE = 'prometheus/scrape-example.yaml';

/** Grafana's built-in variables, with values that suit a 1 s scrape interval. */
const GRAFANA_BUILTINS: Record<string, string> = {
  __rate_interval: '30s',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '1m',
  __range_s: '60',
  __range_ms: '60000',
};

/** What one query must return: data, or nothing (absent() while the target is up). */
interface QueryCheck {
  name: string;
  expr: string;
  expect: 'data' | 'empty';
  /** Labels the panel's legend shows (`{{label}}`): each must be set on some series of the answer. */
  legend?: string[];
}

interface GrafanaPanel {
  title?: string;
  targets?: { expr?: string; refId?: string; legendFormat?: string }[];
  panels?: GrafanaPanel[];
}

interface GrafanaVariable {
  name: string;
  type: string;
  allValue?: string;
  definition?: string;
}

/** `$var`, `${var}`, `${var:format}` and `[[var]]` replaced: built-ins as above, template variables by their "All" value. */
function substituteVariables(expr: string, variables: readonly GrafanaVariable[]): string {
  return expr.replace(/\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a, b, c) => {
    const name = (a ?? b ?? c) as string;
    const value = GRAFANA_BUILTINS[name] ?? variables.find((v) => v.name === name)?.allValue;
    if (value === undefined) throw new Error(`unknown Grafana variable ${whole} in ${expr}`);
    return value;
  });
}

interface Dashboard {
  panels: GrafanaPanel[];
  templating: { list: GrafanaVariable[] };
}

const loadDashboard = (file: string) => JSON.parse(readFileSync(deploy(file), 'utf8')) as Dashboard;

function dashboardChecks(file: string): QueryCheck[] {
  const dashboard = loadDashboard(file);
  const variables = dashboard.templating.list.filter((v) => v.type !== 'datasource');
  const checks: QueryCheck[] = [];
  const walk = (panels: readonly GrafanaPanel[]) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (target.expr === undefined) continue;
        checks.push({
          name: `${file} "${panel.title}" ${target.refId}: ${target.expr}`,
          expr: substituteVariables(target.expr, variables),
          expect: 'data',
          legend: [...(target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!),
        });
      }
      walk(panel.panels ?? []);
    }
  };
  walk(dashboard.panels);
  return checks;
}

/** The dashboards' `label_values(selector, label)` variables, run through the label values API as Grafana does. */
function variableChecks(file: string): { name: string; label: string; match: string }[] {
  const variables = loadDashboard(file).templating.list;
  return variables
    .filter((v) => v.type === 'query')
    .map((v) => {
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(v.definition ?? '');
      if (!m) throw new Error(`${file}: variable ${v.name} is not label_values(selector, label)`);
      return {
        name: `${file} variable ${v.name}: ${v.definition}`,
        match: substituteVariables(m[1]!, variables),
        label: m[2]!,
      };
    });
}

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string; for?: string }[] }[];
}

const loadRules = (file: string) => parse(readFileSync(deploy(file), 'utf8')) as RuleFile;

function ruleChecks(file: string): QueryCheck[] {
  return loadRules(file).groups.flatMap((group) =>
    group.rules.flatMap((rule): QueryCheck[] =>
      // `A > 0 or B`: each operand must be a valid query with data.
      splitOr(rule.expr.trim()).map((expr): QueryCheck => {
        const name = `${file} ${rule.alert ?? rule.record}`;
        // absent() has data only when the target is missing: while Eyrie is scraped it must be empty.
        if (expr.startsWith('absent(')) return { name: `${name}: ${expr}`, expr, expect: 'empty' };
        const split = splitThreshold(expr);
        const value = split?.value ?? expr;
        return { name: `${name}: ${value.replace(/\s+/g, ' ')}`, expr: value, expect: 'data' };
      }),
    ),
  );
}

const queryChecks = [...DASHBOARDS.flatMap(dashboardChecks), ...RULE_FILES.flatMap(ruleChecks)];
const labelChecks = DASHBOARDS.flatMap(variableChecks);

/** Alerts without `for` whose condition the setup makes true: Prometheus must fire them. */
const EXPECTED_FIRING = [
  'EyrieDeadLettersIncreasing',
  'EyrieEventsDropped',
  'EyrieFilterErrors',
  'EyrieMetricSeriesOverflow',
];

/**
 * Request bodies (JSON arrays of 8 events) to post in a loop. Realistic events, but each batch has
 * one event of every priority (the generator almost never makes Emergency or Alert), and the cycle
 * is short, so the first `max_series` label sets keep growing (rate() > 0) while the rest overflow.
 */
function eventBatches(): string[] {
  const lines = generateEvents(64, { seed: 11 }).map((line, i) =>
    line.replace(/"priority":"[^"]*"/, `"priority":"${PRIORITIES[i % PRIORITIES.length]}"`),
  );
  const batches: string[] = [];
  for (let i = 0; i < lines.length; i += PRIORITIES.length) {
    batches.push(`[${lines.slice(i, i + PRIORITIES.length).join(',')}]`);
  }
  return batches;
}

const hostPort = (url: string) => new URL(url).host;

const skip =
  !prometheusInstalled() && !process.env.CI
    ? 'prometheus/promtool not installed (apt-get install --no-install-recommends prometheus, or .ci/services); under CI=true this fails instead'
    : false;

describe('Grafana dashboards and Prometheus rules on a real Prometheus', { skip, timeout: 180_000 }, () => {
  let dir: string | undefined;
  const servers: RecordingServer[] = [];
  const eyries: EyrieProcess[] = [];
  let prometheus: PrometheusServer | undefined;
  /** The main Eyrie's `instance` label: it never answers 503. */
  let mainInstance = '';
  let posting: Promise<void> | undefined;
  let stopPosting = false;
  const postingProblems: string[] = [];

  /** Why a query check fails now, or undefined when it holds. */
  async function queryProblem(check: QueryCheck): Promise<string | undefined> {
    const answer = await prometheus!.query(check.expr);
    if (answer.status !== 'success') return `${answer.errorType}: ${answer.error}`;
    const result = answer.data!.result as Sample[];
    if (check.expect === 'data' && result.length === 0) return 'no data';
    if (check.expect === 'empty' && result.length > 0)
      return `expected no data, got ${JSON.stringify(result)}`;
    // A legend label no series has shows as "" in every legend entry: a label Eyrie does not export.
    const unset = (check.legend ?? []).filter((label) => !result.some((s) => (s.metric[label] ?? '') !== ''));
    if (unset.length > 0) return `legend label(s) set on no series: ${unset.join(', ')}`;
    return undefined;
  }

  async function labelProblem(check: { label: string; match: string }): Promise<string | undefined> {
    const params = new URLSearchParams({ 'match[]': check.match });
    const answer = await prometheus!.get<{ status: string; data?: string[]; error?: string }>(
      `/api/v1/label/${check.label}/values?${params.toString()}`,
    );
    if (answer.status !== 'success') return answer.error;
    return answer.data!.length === 0 ? 'no values' : undefined;
  }

  interface RulesAnswer {
    data: {
      groups: {
        rules: { name: string; health: string; lastError?: string; state?: string }[];
      }[];
    };
  }

  /** Every shipped rule loaded and evaluated without error; the expected alerts fire, the absent one does not. */
  async function rulesProblem(): Promise<string | undefined> {
    const { data } = await prometheus!.get<RulesAnswer>('/api/v1/rules');
    const rules = data.groups.flatMap((g) => g.rules);
    const expected = RULE_FILES.flatMap((f) => loadRules(f).groups.flatMap((g) => g.rules)).map(
      (r) => r.alert ?? r.record,
    );
    const missing = expected.filter((name) => !rules.some((r) => r.name === name));
    if (missing.length > 0) return `not loaded: ${missing.join(', ')}`;
    const unhealthy = rules.filter((r) => r.health !== 'ok');
    if (unhealthy.length > 0)
      return `not evaluated ok: ${unhealthy.map((r) => `${r.name} ${r.health} ${r.lastError ?? ''}`).join('; ')}`;
    const state = (name: string) => rules.find((r) => r.name === name)?.state;
    const notFiring = EXPECTED_FIRING.filter((name) => state(name) !== 'firing');
    if (notFiring.length > 0) return `not firing: ${notFiring.map((n) => `${n} (${state(n)})`).join(', ')}`;
    if (state('FalcoExporterAbsent') !== 'inactive')
      return `FalcoExporterAbsent is ${state('FalcoExporterAbsent')}`;
    return undefined;
  }

  before(async () => {
    if (!prometheusInstalled()) {
      throw new Error('prometheus/promtool not installed: run .ci/services (Debian package prometheus)');
    }
    dir = tempDir('eyrie-prometheus-');
    const delivered = await startRecordingServer();
    const refused = await startRecordingServer();
    refused.respondWith(() => ({ status: 503 }));
    const stalled = await startRecordingServer();
    stalled.respondWith(() => ({ hang: true }));
    servers.push(delivered, refused, stalled);

    const mainDir = join(dir, 'main');
    const fullDir = join(dir, 'disk-full');
    mkdirSync(mainDir);
    mkdirSync(fullDir);
    const main = writeConfig(
      `
listen: { address: 127.0.0.1, port: 0 }
exporter: { enabled: true, address: 127.0.0.1, port: 0, probes: { enabled: false } }
metrics: { max_series: 32 }
delivery: { shutdown_timeout: 1s }
destinations:
  - name: delivered
    type: webhook
    address: ${delivered.url}
  - name: refused
    type: webhook
    address: ${refused.url}
    # A short max_interval: the failing destination is retried (and gives up) all the time, not once a minute.
    retry: { max_attempts: 2, initial_interval: 50ms, max_interval: 100ms }
  - name: stalled
    type: webhook
    address: ${stalled.url}
    queue: { max_events: 1, when_full: drop_newest }
  - name: misfiltered
    type: webhook
    address: ${delivered.url}
    # No event has this field: the expression fails on every one (cel_error).
    filter: { cel: 'event.output_fields["no.such.field"] == "x"' }
`,
      mainDir,
    );
    // A database is never 1 byte: this one answers every event with 503 journal_unavailable (it needs
    // a durable destination to have a journal at all).
    const diskFull = writeConfig(
      `
listen: { address: 127.0.0.1, port: 0 }
delivery: { disk_cap: 1 }
destinations:
  - name: unreached
    type: webhook
    address: ${delivered.url}
`,
      fullDir,
    );
    const [mainEyrie, fullEyrie] = await Promise.all([spawnEyrie(main.file), spawnEyrie(diskFull.file)]);
    eyries.push(mainEyrie, fullEyrie);
    mainInstance = hostPort(mainEyrie.url);
    const exporterUrl = /"exporter":"(https?:\/\/[^"]+)"/.exec(mainEyrie.output())?.[1];
    assert.ok(exporterUrl, `eyrie logged no exporter address: ${mainEyrie.output()}`);

    // The shipped scrape example, pointed at the test processes and scraped every second.
    const example = parse(readFileSync(deploy(SCRAPE_EXAMPLE), 'utf8')) as {
      rule_files: string[];
      scrape_configs: { job_name: string }[];
    };
    const targets: Record<string, { targets: string[]; labels?: Record<string, string> }[]> = {
      eyrie: [{ targets: [hostPort(mainEyrie.url), hostPort(fullEyrie.url)] }],
      // `pod` is what kubernetes_sd / a ServiceMonitor adds; the Falco Events dashboard groups by it.
      'falco-exporter': [{ targets: [hostPort(exporterUrl)], labels: { pod: 'eyrie-0' } }],
    };
    prometheus = await startPrometheus(
      {
        global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
        rule_files: example.rule_files.map((f) => deploy(join('prometheus', f))),
        scrape_configs: example.scrape_configs.map((job) => {
          const staticConfigs = targets[job.job_name];
          if (!staticConfigs) throw new Error(`${SCRAPE_EXAMPLE}: unexpected job ${job.job_name}`);
          return { ...job, static_configs: staticConfigs };
        }),
      },
      dir,
    );

    const batches = eventBatches();
    const post = async (url: string, body: string, status: number) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await res.text();
      if (res.status !== status && postingProblems.length < 5) {
        postingProblems.push(`${url}: expected ${status}, got ${res.status} ${text}`);
      }
    };
    // A malformed request, so the rejections panel has a 4xx series next to the 503s.
    await post(mainEyrie.url, '{"rule":', 400);
    posting = (async () => {
      for (let i = 0; !stopPosting; i++) {
        try {
          await post(mainEyrie.url, batches[i % batches.length]!, 200);
          if (i % 10 === 0) await post(fullEyrie.url, batches[0]!, 503);
        } catch (err) {
          postingProblems.push(String(err));
        }
        await sleep(100);
      }
    })();

    // Until every query has data (rate() needs two samples of a series in its range) or a minute passed.
    const started = Date.now();
    for (;;) {
      const problems = await Promise.all([
        ...queryChecks.map(queryProblem),
        ...labelChecks.map(labelProblem),
        rulesProblem(),
      ]);
      if (problems.every((p) => p === undefined) || Date.now() - started > 60_000) break;
      await sleep(1000);
    }
  });

  after(async () => {
    stopPosting = true;
    await posting;
    await Promise.allSettled([prometheus?.close(), ...eyries.map((e) => stopProcess(e.child))]);
    await Promise.allSettled(servers.map((s) => s.close()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('promtool check rules passes on both rule files', () => {
    const { status, output } = promtool(['check', 'rules', ...RULE_FILES.map(deploy)]);
    assert.equal(status, 0, output);
  });

  it("promtool's unit tests of the rules pass: the first dead letter or drop of a destination fires", () => {
    const tests = fileURLToPath(new URL('fixtures/prometheus/eyrie-rules.test.yaml', import.meta.url));
    const { status, output } = promtool(['test', 'rules', tests]);
    assert.equal(status, 0, output);
  });

  it('promtool check config passes on the scrape example (and the rule files it loads)', () => {
    const { status, output } = promtool(['check', 'config', deploy(SCRAPE_EXAMPLE)]);
    assert.equal(status, 0, output);
  });

  it('Eyrie accepted every batch, and the disk-capped one answered 503', () => {
    assert.deepEqual(postingProblems, []);
  });

  it('Prometheus evaluates every shipped rule; the forced alerts fire, FalcoExporterAbsent does not', async () => {
    assert.equal(await rulesProblem(), undefined);
  });

  it('the series EyrieIngestJournalUnavailable rates exists at 0 before the first 503, so rate() sees that one', async () => {
    const answer = await prometheus!.query(
      `eyrie_ingest_rejected_requests_total{code="503", reason="journal_unavailable", instance="${mainInstance}"}`,
    );
    assert.equal(answer.status, 'success', answer.error);
    const result = answer.data!.result as Sample[];
    assert.deepEqual(
      result.map((s) => s.value?.[1]),
      ['0'],
      'a burst of 503s within one scrape interval would otherwise never fire the alert',
    );
  });

  for (const check of queryChecks) {
    it(check.name, async () => {
      assert.equal(await queryProblem(check), undefined, check.expr);
    });
  }

  for (const check of labelChecks) {
    it(check.name, async () => {
      assert.equal(await labelProblem(check), undefined, check.match);
    });
  }
});
