import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startEyrie, type RunningEyrie } from '../src/app.ts';
import { makePki, type TestPki } from './helpers/certs.ts';
import { tempDir } from './helpers/config-file.ts';
import { generateEvents } from './helpers/events.ts';
import { silentLogger, testConfig } from './helpers/ingest.ts';
import type { EyrieConfig } from '../src/config/types.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Metrics } from '../src/metrics/registry.ts';
import { FalcoEventsCounter } from '../src/metrics/falco-events.ts';
import { parseFalcoEvent } from '../src/event/falco-event.ts';
import { eyrieCli } from './helpers/eyrie-process.ts';
import { startFakeFalco, responseFromJsonAlert, type FakeFalco } from './helpers/fake-falco.ts';
import { freePort } from './helpers/prometheus.ts';

function exporterConfig(mutate: (c: EyrieConfig) => void = () => {}): EyrieConfig {
  return testConfig((c) => {
    c.storage.path = tempDir();
    c.exporter.enabled = true;
    c.exporter.address = '127.0.0.1';
    c.exporter.port = 0;
    c.exporter.probes.address = '127.0.0.1';
    c.exporter.probes.port = 0;
    mutate(c);
  });
}

async function get(url: string, dispatcher?: Agent): Promise<{ status: number; body: string }> {
  const res = await request(url, dispatcher ? { dispatcher } : {});
  return { status: res.statusCode, body: await res.body.text() };
}

/** The falco_events lines of an exposition, sorted. */
function falcoEvents(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('falco_events'))
    .sort();
}

describe('falco-exporter listeners', () => {
  let eyrie: RunningEyrie;
  before(async () => {
    eyrie = await startEyrie(exporterConfig(), silentLogger);
  });
  after(() => eyrie.close());

  it('counts events from HTTP in falco_events, on the ingest port and on the exporter port alike', async () => {
    const lines = generateEvents(200, { seed: 7 });
    const res = await request(eyrie.addresses.ingest! + '/', {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: lines.join('\n'),
    });
    assert.equal(res.statusCode, 200);
    await res.body.text();
    const fromExporter = await get(eyrie.addresses.exporter! + '/metrics');
    const fromIngest = await get(eyrie.addresses.ingest! + '/metrics');
    assert.equal(fromExporter.status, 200);
    assert.match(fromExporter.body, /^# HELP falco_events $/m);
    assert.match(fromExporter.body, /^# TYPE falco_events counter$/m);
    const series = falcoEvents(fromExporter.body);
    assert.deepEqual(series, falcoEvents(fromIngest.body));
    const total = series.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    assert.equal(total, 200);
    for (const line of series) {
      assert.match(
        line,
        /^falco_events\{hostname="[^"]*",k8s_ns_name="[^"]*",k8s_pod_name="[^"]*",priority="[0-7]",rule="(?:[^"\\]|\\.)*",source="[^"]+",tags=",[^"]*"\} \d+$/,
      );
    }
    // The 404 of anything else, as falco-exporter's Go mux answers it.
    assert.deepEqual(await get(eyrie.addresses.exporter! + '/'), {
      status: 404,
      body: '404 page not found\n',
    });
    assert.deepEqual(await get(eyrie.addresses.probes! + '/nope'), {
      status: 404,
      body: '404 page not found\n',
    });
  });

  it('answers the probes: liveness 204, readiness 204 while the ingest listener is up', async () => {
    assert.equal((await get(eyrie.addresses.probes! + '/liveness')).status, 204);
    assert.equal((await get(eyrie.addresses.probes! + '/readiness')).status, 204);
    assert.equal(eyrie.ready(), true);
  });
});

describe('metric labels of an enriched event', () => {
  it('read the fields before bracket replacement and truncation, as Falcosidekick counts them', async () => {
    const eyrie = await startEyrie(
      exporterConfig((c) => {
        c.enrich.bracket_replacer = '_';
        c.metrics.extra_labels = ['proc.cmdline', 'proc.aname_2'];
      }),
      silentLogger,
    );
    try {
      // Longer than the 512 bytes the destinations get, shorter than a label keeps (MAX_LABEL_VALUE_BYTES).
      const cmdline = 'c'.repeat(1000);
      const body = JSON.stringify({
        output: 'long',
        priority: 'Warning',
        rule: 'Long',
        time: '2026-11-28T10:00:00Z',
        output_fields: { 'proc.cmdline': cmdline, 'proc.aname[2]': 'init' },
      });
      const res = await request(eyrie.addresses.ingest! + '/', { method: 'POST', body });
      assert.equal(res.statusCode, 200);
      await res.body.text();
      const text = (await get(eyrie.addresses.exporter! + '/metrics')).body;
      const sidekick = text
        .split('\n')
        .filter((l) => l.startsWith('falcosecurity_falcosidekick_falco_events_total{'));
      assert.equal(sidekick.length, 1);
      // The whole 1,000 bytes, not the 507 + "[...]" the destinations get; the renamed key is not read.
      assert.ok(sidekick[0]!.includes(`proc_cmdline="${cmdline}"`), sidekick[0]!.slice(0, 300));
      assert.ok(sidekick[0]!.includes('proc_aname_2=""'), sidekick[0]!.slice(0, 300));
      const exporter = falcoEvents(text);
      assert.equal(exporter.length, 1);
      assert.ok(exporter[0]!.includes(`proc_cmdline="${cmdline}"`), exporter[0]!.slice(0, 300));
    } finally {
      await eyrie.close();
    }
  });
});

describe('listeners on address ""', () => {
  it('answer on IPv6 and IPv4 alike, as Go listens on :port (probes of an IPv6-only cluster)', async () => {
    const eyrie = await startEyrie(
      exporterConfig((c) => {
        c.listen.address = '';
        c.exporter.address = '';
        c.exporter.probes.address = '';
      }),
      silentLogger,
    );
    try {
      for (const [role, path] of [
        ['ingest', '/ping'],
        ['exporter', '/metrics'],
        ['probes', '/liveness'],
      ] as const) {
        const port = new URL(eyrie.addresses[role]!).port;
        for (const host of ['127.0.0.1', '[::1]']) {
          const { status } = await get(`http://${host}:${port}${path}`);
          assert.ok(status === 200 || status === 204, `${role} on ${host}: ${status}`);
        }
      }
    } finally {
      await eyrie.close();
    }
  });
});

describe('falco-exporter listeners with TLS and client certificates', () => {
  let pki: TestPki;
  let eyrie: RunningEyrie;
  before(async () => {
    pki = makePki();
    eyrie = await startEyrie(
      exporterConfig((c) => {
        c.exporter.tls = { cert_file: pki.serverCert, key_file: pki.serverKey, client_ca_file: pki.caCert };
      }),
      silentLogger,
    );
  });
  after(() => eyrie.close());

  it('serves /metrics only to clients with a certificate the CA signed', async () => {
    assert.match(eyrie.addresses.exporter!, /^https:/);
    const url = eyrie.addresses.exporter! + '/metrics';
    const ca = pki.read(pki.caCert);
    const valid = new Agent({
      connect: { ca, cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) },
    });
    const rogue = new Agent({ connect: { ca, cert: pki.read(pki.rogueCert), key: pki.read(pki.rogueKey) } });
    const none = new Agent({ connect: { ca } });
    try {
      const ok = await get(url, valid);
      assert.equal(ok.status, 200);
      assert.match(ok.body, /# TYPE falco_events counter/);
      await assert.rejects(get(url, rogue));
      await assert.rejects(get(url, none));
    } finally {
      await Promise.all([valid.close(), rogue.close(), none.close()]);
    }
  });
});

describe('eyrie exporter: falco-exporter’s command line, from its image path', () => {
  const dir = tempDir('eyrie-exporter-');
  const socket = join(dir, 'falco.sock');
  let falco: FakeFalco | undefined;
  let child: ChildProcess;
  let log = '';
  let metricsUrl: string;
  let probesUrl: string;
  const lines = generateEvents(150, { seed: 11 });

  before(async () => {
    // The image's PATH has `eyrie`; here a wrapper runs the sources.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'eyrie'),
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${eyrieCli.map((a) => JSON.stringify(a)).join(' ')} "$@"\n`,
      { mode: 0o755 },
    );
    const [metricsPort, probesPort] = [await freePort(), await freePort()];
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    probesUrl = `http://127.0.0.1:${probesPort}`;
    // Exactly the falco-exporter chart's args (daemonset.yaml), with test addresses.
    child = spawn(
      fileURLToPath(new URL('../deploy/image/falco-exporter', import.meta.url)),
      [
        `--client-socket=unix://${socket}`,
        '--timeout=2m',
        `--listen-address=127.0.0.1:${metricsPort}`,
        `--probes-listen-address`,
        `127.0.0.1:${probesPort}`,
      ],
      {
        // The repository root, where `--import tsx` resolves.
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        env: {
          ...process.env,
          PATH: `${bin}:${process.env.PATH}`,
          EYRIE_LOG__LEVEL: 'info',
          EYRIE_STORAGE__PATH: join(dir, 'data'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    await waitFor(
      () => log.includes('eyrie is listening'),
      30_000,
      () => log,
    );
  });
  after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await falco?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** What falco_events should say for these alerts: the same counter fed in-process. */
  async function expected(alerts: string[]): Promise<string[]> {
    const metrics = new Metrics({ defaultMetrics: false });
    const counter = new FalcoEventsCounter(metrics, [], 0);
    for (const line of alerts) counter.count(parseFalcoEvent(line));
    return falcoEvents(await metrics.text());
  }

  it('is live at once, and ready only once Falco’s stream is open', async () => {
    assert.equal((await get(probesUrl + '/liveness')).status, 204);
    // Before the stream opens falco-exporter has no /readiness route: its mux's not found.
    assert.deepEqual(await get(probesUrl + '/readiness'), { status: 404, body: '404 page not found\n' });
    assert.doesNotMatch(log, /"ingest"/, 'no HTTP ingest listener, as falco-exporter has none');
    falco = await startFakeFalco({ socket });
    await waitFor(
      async () => (await get(probesUrl + '/readiness')).status === 204,
      15_000,
      () => log,
    );
    // The log line crosses a pipe; the readiness answer can overtake it.
    await waitFor(
      () => /0\.43\.1/.test(log),
      5_000,
      () => `the Falco version is logged:\n${log}`,
    );
  });

  it('counts every alert from gRPC with the labels the HTTP path gives', async () => {
    falco!.push(...lines.slice(0, 100).map(responseFromJsonAlert));
    let series: string[] = [];
    await waitFor(
      async () => {
        series = falcoEvents((await get(metricsUrl)).body);
        return total(series) === 100;
      },
      15_000,
      () => series.join('\n'),
    );
    assert.deepEqual(series, await expected(lines.slice(0, 100)));
  });

  it('survives Falco restarting: readiness drops, the stream resumes, counters keep counting', async () => {
    await falco!.stop();
    await waitFor(
      async () => (await get(probesUrl + '/readiness')).status === 404,
      15_000,
      () => log,
    );
    falco = await startFakeFalco({ socket });
    falco.push(...lines.slice(100).map(responseFromJsonAlert));
    let series: string[] = [];
    await waitFor(
      async () => {
        series = falcoEvents((await get(metricsUrl)).body);
        return total(series) === 150;
      },
      20_000,
      () => series.join('\n') + log,
    );
    assert.deepEqual(series, await expected(lines));
    assert.equal((await get(probesUrl + '/readiness')).status, 204);
  });

  it('stops on SIGTERM with exit code 0', async () => {
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});

function total(series: string[]): number {
  return series.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  describe: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`timed out; state:\n${describe().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('several Falco gRPC endpoints in one Eyrie', () => {
  const dir = tempDir('eyrie-grpc-many-');
  let falcos: FakeFalco[] = [];
  let eyrie: RunningEyrie;
  before(async () => {
    falcos = [
      await startFakeFalco({ socket: join(dir, 'a.sock') }),
      await startFakeFalco({ socket: join(dir, 'b.sock') }),
    ];
    eyrie = await startEyrie(
      exporterConfig((c) => {
        c.sources.grpc = falcos.map((f) => ({
          address: f.address,
          method: 'sub' as const,
          tls: { ca_file: '', cert_file: '', key_file: '' },
          keepalive_interval: 100,
          connect_timeout: 5000,
          reconnect: { initial_interval: 100, max_interval: 500 },
          poll_interval: 100,
        }));
      }),
      silentLogger,
    );
  });
  after(async () => {
    await eyrie.close();
    await Promise.all(falcos.map((f) => f.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads each, counts each, and names the one that is down in /healthz', async () => {
    const alerts = generateEvents(40, { seed: 5 });
    falcos[0]!.push(...alerts.slice(0, 25).map(responseFromJsonAlert));
    falcos[1]!.push(...alerts.slice(25).map(responseFromJsonAlert));
    let text = '';
    await waitFor(
      async () => {
        text = (await get(eyrie.addresses.exporter! + '/metrics')).body;
        return total(falcoEvents(text)) === 40;
      },
      15_000,
      () => text,
    );
    assert.match(text, /eyrie_ingest_events_total\{source="grpc",outcome="accepted"\} 40/);
    const healthy = JSON.parse((await get(eyrie.addresses.ingest! + '/healthz')).body) as { status: string };
    assert.equal(healthy.status, 'ok');

    await falcos[1]!.stop();
    let health: { status: string; degraded?: string[] } = { status: '' };
    await waitFor(
      async () => {
        health = JSON.parse((await get(eyrie.addresses.ingest! + '/healthz')).body) as typeof health;
        return health.status === 'degraded';
      },
      10_000,
      () => JSON.stringify(health),
    );
    assert.deepEqual(health.degraded, [`source grpc ${falcos[1]!.address}`]);
    assert.equal((await get(eyrie.addresses.probes! + '/readiness')).status, 204, 'still receiving');
  });
});
