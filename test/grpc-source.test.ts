import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { GrpcSourceConfig } from '../src/config/types.ts';
import { timeToNanos, type FalcoEvent } from '../src/event/falco-event.ts';
import { Metrics } from '../src/metrics/registry.ts';
import { Pipeline } from '../src/routing/pipeline.ts';
import { GrpcSource, grpcTarget } from '../src/sources/grpc/client.ts';
import { timestampToRfc3339 } from '../src/sources/grpc/convert.ts';
import type { FalcoOutputResponse } from '../src/sources/grpc/falco-proto.ts';
import { makePki, type TestPki } from './helpers/certs.ts';
import { tempDir as makeTempDir } from './helpers/config-file.ts';
import { waitUntil } from './helpers/delivery.ts';
import { generateEvents } from './helpers/events.ts';
import {
  grpcFieldValue,
  responseFromJsonAlert,
  startFakeFalco,
  type FakeFalco,
} from './helpers/fake-falco.ts';
import { CaptureRouter, refusingRouter, silentLogger, identityEnricher } from './helpers/ingest.ts';

type LogLine = Record<string, unknown> & { level: number; msg: string };

interface Harness {
  source: GrpcSource;
  router: CaptureRouter;
  metrics: Metrics;
  logs: LogLine[];
}

const tempDirs: string[] = [];
const cleanups: (() => unknown)[] = [];

function tempDir(): string {
  const dir = makeTempDir('eyrie-grpc-');
  tempDirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function grpcConfig(address: string, overrides: Partial<GrpcSourceConfig> = {}): GrpcSourceConfig {
  return {
    address,
    method: 'sub',
    tls: { ca_file: '', cert_file: '', key_file: '' },
    keepalive_interval: 100,
    connect_timeout: 1000,
    reconnect: { initial_interval: 50, max_interval: 200 },
    poll_interval: 100,
    ...overrides,
  };
}

/** A started GrpcSource feeding a real Pipeline whose router records what it takes; logs captured. */
function startSource(config: GrpcSourceConfig, router: CaptureRouter = new CaptureRouter()): Harness {
  const logs: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => logs.push(JSON.parse(line) as LogLine) },
  );
  const metrics = new Metrics({ defaultMetrics: false });
  const pipeline = new Pipeline(identityEnricher, router, silentLogger);
  const source = new GrpcSource(config, { pipeline, metrics, logger, dataDir: tempDir() });
  source.start();
  cleanups.push(() => source.close());
  return { source, router, metrics, logs };
}

async function fakeFalco(options: Parameters<typeof startFakeFalco>[0]): Promise<FakeFalco> {
  const falco = await startFakeFalco(options);
  cleanups.push(() => falco.kill());
  return falco;
}

async function ingestCount(metrics: Metrics, outcome: string): Promise<number> {
  const { values } = await metrics.ingestEvents.metric.get();
  return values.find((v) => v.labels.source === 'grpc' && v.labels.outcome === outcome)?.value ?? 0;
}

/** Generated Falco JSON alerts and what Falco's gRPC output sends for each. */
function alerts(count: number, seed: number): { json: string[]; responses: FalcoOutputResponse[] } {
  const json = generateEvents(count, { seed });
  return { json, responses: json.map(responseFromJsonAlert) };
}

/** The events arrived in order, exactly once each. */
function assertSameSequence(received: readonly FalcoEvent[], sent: readonly FalcoOutputResponse[]): void {
  assert.deepEqual(
    received.map((e) => `${e.time} ${e.rule}`),
    sent.map((r) => `${timestampToRfc3339(r.time)} ${r.rule}`),
  );
  assert.equal(new Set(received.map((e) => e.uuid)).size, received.length);
}

describe('grpcTarget', () => {
  it('dials unix sockets insecurely in every spelling, and anything else as TCP', () => {
    assert.deepEqual(grpcTarget('unix:///run/falco/falco.sock'), {
      target: 'unix:///run/falco/falco.sock',
      unix: true,
    });
    assert.deepEqual(grpcTarget('unix:/run/falco/falco.sock'), {
      target: 'unix:///run/falco/falco.sock',
      unix: true,
    });
    assert.deepEqual(grpcTarget('/run/falco/falco.sock'), {
      target: 'unix:///run/falco/falco.sock',
      unix: true,
    });
    assert.deepEqual(grpcTarget('falco.falco.svc:5060'), { target: 'falco.falco.svc:5060', unix: false });
  });
});

describe('GrpcSource', { timeout: 90_000 }, () => {
  it('streams alerts over a unix socket with every field converted, and logs the Falco version', async () => {
    const socket = join(tempDir(), 'falco.sock');
    const falco = await fakeFalco({ socket });
    const { json, responses } = alerts(120, 7);
    const missing: FalcoOutputResponse = {
      ...responses[0]!,
      rule: 'Fields without values',
      output_fields: { 'container.name': '<NA>', 'proc.name': 'sh' },
      source: '',
      source_deprecated: 1,
      tags: [],
      time: { seconds: '1714557600', nanos: 7 },
    };
    falco.push(...responses.slice(0, 60)); // queued before Eyrie connects
    const { source, router, metrics, logs } = startSource(grpcConfig(`unix://${socket}`));

    await waitUntil(
      () => router.events.length === 60,
      5000,
      () => 'the queued alerts',
    );
    assert.equal(source.ready(), true);
    falco.push(...responses.slice(60), missing); // while subscribed: fetched by a keep-alive request
    await waitUntil(
      () => router.events.length === 121,
      5000,
      () => 'the later alerts',
    );
    await sleep(250);
    assert.equal(router.events.length, 121, 'nothing more, nothing twice');
    assert.equal(falco.queued, 0);

    for (const [i, line] of json.entries()) {
      const original = JSON.parse(line) as Record<string, unknown> & {
        output_fields: Record<string, unknown>;
      };
      const event = router.events[i]!;
      assert.equal(event.rule, original.rule);
      assert.equal(event.priority, original.priority);
      assert.equal(event.output, original.output);
      assert.equal(event.hostname, original.hostname);
      assert.equal(event.source, original.source);
      assert.deepEqual(event.tags, [...(original.tags as string[])].sort());
      assert.match(event.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      assert.equal(timeToNanos(event.time), timeToNanos(original.time as string));
      const expectedFields = Object.fromEntries(
        Object.entries(original.output_fields)
          .filter(([key]) => key !== 'evt.time') // Falco's gRPC output has no evt.time
          .map(([key, value]) => [key, value === null ? null : grpcFieldValue(value)]),
      );
      assert.deepEqual(event.output_fields, expectedFields);
    }
    assert.ok(router.events.some((e) => Object.values(e.output_fields).includes(null)));
    const last = router.events[120]!;
    assert.deepEqual(last.output_fields, { 'container.name': null, 'proc.name': 'sh' });
    assert.equal(last.source, 'k8s_audit');
    assert.equal(last.time, '2024-05-01T10:00:00.000000007Z');

    assert.equal(await ingestCount(metrics, 'accepted'), 121);
    assert.equal(source.status().events, 121);
    assert.equal(source.status().falcoVersion, '0.43.1');
    assert.equal(falco.versionCalls, 1);
    const versionLog = logs.find((l) => l.msg === 'connected to Falco');
    assert.equal(versionLog?.falcoVersion, '0.43.1');
    assert.equal(versionLog?.level, 30);
    assert.deepEqual(source.status(), {
      address: `unix://${socket}`,
      connected: true,
      falcoVersion: '0.43.1',
      events: 121,
    });
  });

  it('reads alerts from a Falco without the version service, with a warning', async () => {
    const socket = join(tempDir(), 'falco.sock');
    const falco = await fakeFalco({ socket, version: false });
    const { responses } = alerts(5, 3);
    falco.push(...responses);
    const { source, router, logs } = startSource(grpcConfig(socket));
    await waitUntil(
      () => router.events.length === 5,
      5000,
      () => 'the alerts',
    );
    const warning = logs.find((l) => l.msg.startsWith('cannot read the Falco version'));
    assert.equal(warning?.code, 'UNIMPLEMENTED');
    assert.equal(source.status().falcoVersion, undefined);
  });

  describe('over TCP with mutual TLS', () => {
    let pki: TestPki;
    before(() => {
      pki = makePki();
    });
    after(() => rmSync(pki.dir, { recursive: true, force: true }));

    const tls = (cert: string, key: string) => ({ ca_file: pki.caCert, cert_file: cert, key_file: key });
    const serverTls = () => ({
      ca: pki.read(pki.caCert),
      cert: pki.read(pki.serverCert),
      key: pki.read(pki.serverKey),
    });

    it('streams alerts with the client certificate', async () => {
      const falco = await fakeFalco({ tls: serverTls() });
      const { responses } = alerts(30, 11);
      falco.push(...responses);
      const { source, router } = startSource(
        grpcConfig(falco.address, { tls: tls(pki.clientCert, pki.clientKey) }),
      );
      await waitUntil(
        () => router.events.length === 30,
        5000,
        () => 'the alerts',
      );
      assertSameSequence(router.events, responses);
      assert.equal(source.ready(), true);
      assert.equal(source.status().falcoVersion, '0.43.1');
    });

    it('keeps retrying, without taking alerts, with a certificate of another CA or a missing file', async () => {
      const falco = await fakeFalco({ tls: serverTls() });
      falco.push(...alerts(3, 5).responses);
      const rogue = startSource(grpcConfig(falco.address, { tls: tls(pki.rogueCert, pki.rogueKey) }));
      const missing = startSource(
        grpcConfig(falco.address, { tls: tls(pki.clientCert, join(pki.dir, 'absent.key')) }),
      );
      await waitUntil(
        () => rogue.logs.filter((l) => l.level === 40).length >= 2,
        5000,
        () => 'several failed attempts',
      );
      await waitUntil(
        () => missing.logs.filter((l) => l.level === 50).length >= 2,
        5000,
        () => 'several unreadable key files',
      );
      assert.equal(rogue.source.ready(), false);
      assert.equal(missing.source.ready(), false);
      assert.equal(falco.queued, 3, 'no alert was taken');
      assert.match(rogue.source.status().lastError ?? '', /^cannot connect to Falco: no connection within/);
      assert.match(missing.source.status().lastError ?? '', /tls\.key_file: cannot read .*absent\.key/);
      assert.equal(rogue.router.events.length + missing.router.events.length, 0);
    });
  });

  it('reconnects after Falco is killed or shuts down, losing nothing pushed after the restart', async () => {
    const socket = join(tempDir(), 'falco.sock');
    let falco = await fakeFalco({ socket });
    const { responses } = alerts(30, 13);
    const { source, router, logs } = startSource(grpcConfig(socket)); // a bare path, as falco-exporter accepts
    falco.push(...responses.slice(0, 10));
    await waitUntil(
      () => router.events.length === 10,
      5000,
      () => 'the first alerts',
    );

    falco.kill();
    await waitUntil(
      () => !source.ready(),
      5000,
      () => 'not ready while Falco is down',
    );
    assert.equal(source.status().connected, false);
    await sleep(300); // several failed reconnection attempts
    assert.equal(source.ready(), false);
    falco = await fakeFalco({ socket });
    falco.push(...responses.slice(10, 20));
    await waitUntil(
      () => router.events.length === 20,
      5000,
      () => 'the alerts after the restart',
    );
    assert.equal(source.ready(), true);

    await falco.stop(); // Falco shutting down: the stream ends with status OK
    await waitUntil(
      () => !source.ready(),
      5000,
      () => 'not ready after the shutdown',
    );
    assert.ok(logs.some((l) => l.msg.startsWith('Falco closed the alert stream')));
    falco = await fakeFalco({ socket });
    falco.push(...responses.slice(20));
    await waitUntil(
      () => router.events.length === 30,
      5000,
      () => 'the alerts after the second restart',
    );
    await sleep(200);
    assertSameSequence(router.events, responses);
    assert.equal(source.ready(), true);
    assert.equal(falco.subscribers, 1);
  });

  it('asks for more after each keepalive_interval of silence', async () => {
    const socket = join(tempDir(), 'falco.sock');
    const falco = await fakeFalco({ socket });
    const { responses } = alerts(5, 17);
    const { router } = startSource(grpcConfig(`unix:${socket}`, { keepalive_interval: 80 }));
    await waitUntil(
      () => falco.requestsReceived >= 1,
      5000,
      () => 'subscribed',
    );
    for (const [i, response] of responses.entries()) {
      await sleep(250); // Falco has drained its queue and waits for a request
      falco.push(response);
      await waitUntil(
        () => router.events.length === i + 1,
        2000,
        () => `alert ${i}`,
      );
    }
    assertSameSequence(router.events, responses);
    assert.ok(falco.requestsReceived >= 6, `requests: ${falco.requestsReceived}`);
  });

  it('holds alerts while the pipeline refuses them, pausing the stream, then delivers each once', async () => {
    const socket = join(tempDir(), 'falco.sock');
    const falco = await fakeFalco({ socket });
    const { responses } = alerts(60, 19);
    const router = refusingRouter(5);
    const { source, metrics, logs } = startSource(grpcConfig(socket), router);
    await waitUntil(
      () => falco.requestsReceived >= 1,
      5000,
      () => 'subscribed',
    );
    falco.push(...responses.slice(0, 30));
    await waitUntil(
      () => router.calls >= 1,
      5000,
      () => 'a refusal',
    );
    await waitUntil(
      () => falco.queued === 0,
      5000,
      () => 'Falco done writing',
    ); // what flow control lets it write
    await sleep(50);
    const requestsBefore = falco.requestsReceived;
    falco.push(...responses.slice(30));
    await sleep(250); // more than two keepalive intervals
    assert.ok(router.refusals > 0, 'still refusing');
    assert.equal(falco.requestsReceived, requestsBefore, 'no request while holding');
    assert.equal(falco.queued, 30, 'Falco keeps the later alerts');
    await waitUntil(
      () => router.events.length === 60,
      5000,
      () => 'every alert',
    );
    await sleep(250);
    assertSameSequence(router.events, responses);
    assert.equal(router.refusals, 0);
    assert.equal(await ingestCount(metrics, 'accepted'), 60);
    assert.equal(source.status().events, 60);
    assert.ok(logs.some((l) => l.msg.startsWith('journal unavailable')));
  });

  it('polls with get: drains the queue, waits poll_interval, repeats', async () => {
    const socket = join(tempDir(), 'falco.sock');
    const falco = await fakeFalco({ socket });
    const { responses } = alerts(20, 23);
    falco.push(...responses.slice(0, 10));
    const { source, router } = startSource(grpcConfig(`unix://${socket}`, { method: 'get' }));
    await waitUntil(
      () => router.events.length === 10,
      5000,
      () => 'the first drain',
    );
    await waitUntil(
      () => source.ready(),
      5000,
      () => 'ready',
    );
    falco.push(...responses.slice(10));
    await waitUntil(
      () => router.events.length === 20,
      5000,
      () => 'the next drain',
    );
    assertSameSequence(router.events, responses);
    assert.ok(falco.getCalls >= 2);
    assert.equal(falco.subscribers, 0);
    assert.equal(falco.requestsReceived, 0);

    falco.kill();
    await waitUntil(
      () => !source.ready(),
      5000,
      () => 'not ready after a failed get',
    );
  });

  it('closes while Falco is unreachable, promptly', async () => {
    const { source } = startSource(grpcConfig(join(tempDir(), 'nobody.sock'), { connect_timeout: 10_000 }));
    await sleep(100);
    const started = Date.now();
    await source.close();
    assert.ok(Date.now() - started < 1000, `closed in ${Date.now() - started} ms`);
    assert.equal(source.ready(), false);
  });
});
