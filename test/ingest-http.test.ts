import { JournalUnavailableError } from '../src/delivery/journal.ts';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync, deflateSync } from 'node:zlib';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import { request, Agent } from 'undici';
import { startIngest, testConfig, type TestIngest } from './helpers/ingest.ts';
import { generateEvents } from './helpers/events.ts';
import type { ExactNumber } from '../src/event/json.ts';
import { parseFalcoEvent, type FalcoEvent } from '../src/event/falco-event.ts';
import { toSidekickJson } from '../src/event/sidekick-json.ts';
import { warningsLogger } from './helpers/log-capture.ts';
import { metricValue } from './helpers/delivery.ts';

const event =
  '{"hostname":"node-a","output":"09:00:01.000000123: Notice A shell","output_fields":{"evt.time":1767258001000000123,"proc.name":"sh"},"priority":"Notice","rule":"Terminal shell in container","source":"syscall","tags":["container"],"time":"2026-01-01T09:00:01.000000123Z"}';

async function post(
  url: string,
  body: string | Buffer,
  headers: Record<string, string> = { 'content-type': 'application/json' },
  path = '/',
) {
  const res = await request(new URL(path, url), { method: 'POST', body, headers });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: () => JSON.parse(text) as Record<string, unknown>,
  };
}

describe('HTTP ingest', () => {
  let ingest: TestIngest;
  before(async () => {
    ingest = await startIngest(testConfig((c) => (c.listen.body_limit = 64 * 1024)));
  });
  after(() => ingest.close());

  it('accepts one event as Falco http_output sends it: 200, empty body, exact evt.time', async () => {
    const before = ingest.router.events.length;
    const res = await post(ingest.url, event, {
      'content-type': 'application/json',
      'user-agent': 'falcosecurity/falco',
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, '');
    assert.equal(ingest.router.events.length, before + 1);
    const got = ingest.router.events.at(-1)!;
    assert.equal(got.rule, 'Terminal shell in container');
    assert.equal((got.output_fields['evt.time'] as ExactNumber).text, '1767258001000000123');
  });

  it("decodes bad UTF-8 and lone surrogate escapes as Falcosidekick's Go decoder, so the payload bytes match", async () => {
    const body = Buffer.concat([
      Buffer.from(
        '{"output":"x","priority":"Notice","rule":"r","time":"2026-01-01T09:00:01Z","output_fields":{"\\ud800":"first","\\udbff":"second","proc.name":"c',
      ),
      Buffer.from([0xf0, 0x9f, 0x98]), // the first three bytes of an emoji, then "t"
      Buffer.from('t"}}'),
    ]);
    for (const path of ['/', '/any/path']) {
      const res = await post(ingest.url, body, { 'content-type': 'application/json' }, path);
      assert.equal(res.status, 200, res.text);
      const json = toSidekickJson(ingest.router.events.at(-1)!);
      // What Falcosidekick sent for the same bytes (side by side, Go 1.26).
      assert.match(json, /"output_fields":\{"proc\.name":"c\ufffd\ufffd\ufffdt","\ufffd":"second"\}/, json);
    }
  });

  it('keeps the connection alive with a long idle timeout', async () => {
    const res = await request(ingest.url, {
      method: 'POST',
      body: event,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(await res.body.text(), '');
    // Falcosidekick's empty 200: a length, never chunked.
    assert.equal(res.headers['content-length'], '0');
    assert.equal(res.headers['transfer-encoding'], undefined);
    assert.equal(res.headers.connection, 'keep-alive');
    assert.match(String(res.headers['keep-alive']), /timeout=75/);
  });

  it('accepts a JSON array batch and reports rejected entries by index', async () => {
    const before = ingest.router.events.length;
    const bad = '{"rule":"x","priority":"warn","time":"2026-01-01T00:00:00Z"}';
    const res = await post(ingest.url, `[${event},${bad},${event}]`);
    assert.equal(res.status, 200);
    const body = res.json();
    assert.equal(body.accepted, 2);
    assert.equal(body.rejected, 1);
    assert.deepEqual(
      (body.errors as { index: number }[]).map((e) => e.index),
      [1],
    );
    assert.match(JSON.stringify(body.errors), /unknown priority \\"warn\\"/);
    assert.equal(ingest.router.events.length, before + 2);
  });

  it('accepts NDJSON, naming the line that does not parse', async () => {
    const before = ingest.router.events.length;
    const res = await post(ingest.url, `${event}\n{oops\n\n${event}\n`, {
      'content-type': 'application/x-ndjson',
    });
    assert.equal(res.status, 200);
    const body = res.json();
    assert.equal(body.accepted, 2);
    assert.deepEqual(body.errors, [
      { index: 1, message: (body.errors as { message: string }[])[0]!.message },
    ]);
    assert.match((body.errors as { message: string }[])[0]!.message, /not valid JSON/);
    assert.equal(ingest.router.events.length, before + 2);
  });

  it('answers 400 when no event of a batch is valid', async () => {
    const res = await post(ingest.url, '[{"rule":"x"},{"priority":"Debug"}]');
    assert.equal(res.status, 400);
    assert.match(String(res.json().message), /no valid event in the batch/);
    assert.equal((await post(ingest.url, '[]')).status, 400);
  });

  it(
    'answers a body of 200,000 bad NDJSON lines promptly, listing the first 100 problems and counting all',
    { timeout: 30_000 },
    async (t) => {
      // Each bad line used to be matched against every error before it: minutes of a blocked event loop.
      const large = await startIngest(testConfig((c) => (c.listen.body_limit = 1024 * 1024)));
      t.after(() => large.close());
      const bad = await post(large.url, 'x\n'.repeat(200_000), { 'content-type': 'application/x-ndjson' });
      assert.equal(bad.status, 400);
      const refused = bad.json();
      assert.equal(refused.rejected, 200_000);
      const errors = refused.errors as { index: number; message: string }[];
      assert.equal(errors.length, 100);
      assert.deepEqual(
        errors.map((e) => e.index),
        Array.from({ length: 100 }, (_, i) => i),
      );
      assert.match(errors[0]!.message, /line is not valid JSON/);
      const before = ingest.router.events.length;
      const mixed = await post(ingest.url, `${event}\n${'{oops\n'.repeat(150)}[1]\n${event}\n`, {
        'content-type': 'application/x-ndjson',
      });
      assert.equal(mixed.status, 200);
      const body = mixed.json();
      assert.equal(body.accepted, 2);
      assert.equal(body.rejected, 151);
      assert.equal((body.errors as unknown[]).length, 100);
      assert.equal(ingest.router.events.length, before + 2);
    },
  );

  it('takes gzip and deflate bodies', async () => {
    const before = ingest.router.events.length;
    const gz = await post(ingest.url, gzipSync(event), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    assert.equal(gz.status, 200);
    const df = await post(ingest.url, deflateSync(`[${event},${event}]`), {
      'content-type': 'application/json',
      'content-encoding': 'deflate',
    });
    assert.equal(df.status, 200);
    assert.equal(ingest.router.events.length, before + 3);
  });

  it('answers 400 for a body that is not gzip, 415 for an unknown encoding', async () => {
    const bad = await post(ingest.url, Buffer.from('definitely not gzip'), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    assert.equal(bad.status, 400);
    assert.match(String(bad.json().message), /not valid gzip/);
    const br = await post(ingest.url, event, {
      'content-type': 'application/json',
      'content-encoding': 'br',
    });
    assert.equal(br.status, 415);
  });

  it('answers 413 over the body limit, also when a small gzip expands past it', async () => {
    const big = `{"rule":"r","priority":"Debug","time":"2026-01-01T00:00:00Z","output":"${'a'.repeat(70 * 1024)}"}`;
    assert.equal((await post(ingest.url, big)).status, 413);
    const bomb = gzipSync(big);
    assert.ok(bomb.length < 64 * 1024);
    assert.equal(
      (await post(ingest.url, bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' }))
        .status,
      413,
    );
  });

  it('stops inflating a gzip bomb once it is past the limit, not after the 413 went out', async (t) => {
    // Watch the gunzip streams the server creates: how much each inflates.
    const zlib = createRequire(import.meta.url)('node:zlib') as typeof import('node:zlib');
    const inflated: number[] = [];
    const original = zlib.createGunzip;
    const replace = (createGunzip: typeof original) => {
      Object.defineProperty(zlib, 'createGunzip', { value: createGunzip });
      syncBuiltinESMExports();
    };
    replace((options) => {
      const gunzip = original(options);
      const i = inflated.push(0) - 1;
      gunzip.on('data', (chunk: Buffer) => (inflated[i]! += chunk.length));
      return gunzip;
    });
    t.after(() => replace(original));
    // 48 gzip members of 1 MiB of spaces each: under 64 KiB sent, 48 MiB once inflated.
    const member = gzipSync(Buffer.alloc(1024 * 1024, ' '));
    const bomb = Buffer.concat([gzipSync(event), ...Array.from({ length: 48 }, () => member)]);
    assert.ok(bomb.length < 64 * 1024);
    const res = await post(ingest.url, bomb, {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    assert.equal(res.status, 413);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(inflated.length, 1);
    assert.ok(inflated[0]! < 1024 * 1024, `inflated ${inflated[0]} bytes of a body refused at 64 KiB`);
  });

  it('explains text/plain alerts from Falco with json_output off', async () => {
    const res = await post(ingest.url, '09:00:01.000000123: Notice A shell was spawned', {
      'content-type': 'text/plain',
    });
    assert.equal(res.status, 400);
    assert.match(String(res.json().message), /json_output: true/);
    // …but takes JSON sent as text/plain.
    assert.equal((await post(ingest.url, event, { 'content-type': 'text/plain' })).status, 200);
  });

  it('answers 400 with the problem named for empty, unparsable and invalid bodies', async () => {
    const cases: [string, RegExp][] = [
      ['', /body is empty/],
      ['   ', /body is empty/],
      ['{"rule":', /not valid JSON/],
      ['{"priority":"Notice","time":"2026-01-01T00:00:00Z"}', /missing "rule"/],
      ['{"rule":"r","time":"2026-01-01T00:00:00Z"}', /missing "priority"/],
      ['{"rule":"r","priority":"Notice"}', /missing "time"/],
      ['{"rule":"r","priority":"loud","time":"2026-01-01T00:00:00Z"}', /unknown priority/],
      ['{"rule":"r","priority":"Notice","time":"noon"}', /RFC 3339/],
      ['"just a string"', /must be a JSON object/],
    ];
    for (const [body, message] of cases) {
      const res = await post(ingest.url, body);
      assert.equal(res.status, 400, body);
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
      assert.match(String(res.json().message), message, body);
    }
  });

  it('accepts falcosidekick-ui bodies on its routes and on /', async () => {
    const ui = `{"event":${event.replace('{', '{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11",')},"outputs":["WebUI"]}`;
    for (const path of ['/api/v1/events/add', '/api/v1/']) {
      const res = await post(ingest.url, ui, { 'content-type': 'application/json; charset=utf-8' }, path);
      assert.equal(res.status, 200, path);
      assert.equal(res.text, '{}');
      assert.equal(ingest.router.events.at(-1)!.uuid, '3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f2a11');
    }
    assert.equal((await post(ingest.url, ui)).status, 200);
    assert.equal((await post(ingest.url, '{"outputs":[]}', undefined, '/api/v1/events/add')).status, 400);
  });

  it("runs Falcosidekick's test event through the pipeline on POST /test", async () => {
    const res = await request(new URL('/test', ingest.url), { method: 'POST' });
    await res.body.text();
    assert.equal(res.statusCode, 200);
    const e = ingest.router.events.at(-1)!;
    assert.equal(e.rule, 'Test rule');
    assert.equal(e.source, 'internal');
    assert.equal(e.output, 'This is a test from falcosidekick');
  });

  it('answers /ping, /healthz (honest about degraded destinations) and /metrics', async () => {
    const ping = await request(new URL('/ping', ingest.url));
    assert.equal(await ping.body.text(), 'pong\n');
    const ok = await request(new URL('/healthz', ingest.url));
    assert.equal(ok.statusCode, 200);
    assert.equal(((await ok.body.json()) as { status: string }).status, 'ok');
    ingest.router.healthy = false;
    const degraded = (await (await request(new URL('/healthz', ingest.url))).body.json()) as {
      status: string;
      degraded: string[];
    };
    ingest.router.healthy = true;
    assert.equal(degraded.status, 'degraded');
    assert.deepEqual(degraded.degraded, ['destination capture']);
    const metrics = await (await request(new URL('/metrics', ingest.url))).body.text();
    assert.match(
      metrics,
      /falcosecurity_falcosidekick_inputs_total\{source="requests",status="accepted"\} \d+/,
    );
    assert.match(
      metrics,
      /falcosecurity_falcosidekick_inputs_total\{source="requests",status="rejected"\} \d+/,
    );
    assert.match(metrics, /eyrie_ingest_events_total\{source="http",outcome="accepted"\} \d+/);
  });

  it('counts every refused body as a rejected request, whichever path served it (fast path, gzip, auth)', async (t) => {
    const rejected = async (ing: TestIngest) =>
      Number(
        /falcosecurity_falcosidekick_inputs_total\{source="requests",status="rejected"\} (\d+)/.exec(
          await ing.metrics.text(),
        )?.[1] ?? 0,
      );
    const big = event.replace('"output":"', `"output":"${'x'.repeat(500)}`);
    const small = await startIngest(testConfig((c) => (c.listen.body_limit = 300)));
    t.after(() => small.close());
    assert.equal((await post(small.url, big)).status, 413, 'fast path');
    assert.equal(
      (await post(small.url, gzipSync(big + ' '.repeat(5000)), { 'content-encoding': 'gzip' })).status,
      413,
      'gzip, over the limit once inflated',
    );
    assert.equal((await post(small.url, 'not gzip', { 'content-encoding': 'gzip' })).status, 400, 'bad gzip');
    assert.equal((await post(small.url, '{}', { 'content-encoding': 'br' })).status, 415, 'unknown encoding');
    assert.equal(await rejected(small), 4);
    const authed = await startIngest(
      testConfig((c) => {
        c.listen.body_limit = 300;
        c.auth.tokens = ['s3cret'];
      }),
    );
    t.after(() => authed.close());
    assert.equal((await post(authed.url, big, { authorization: 'Bearer s3cret' })).status, 413);
    assert.equal(await rejected(authed), 1);
  });

  it('does not count a body its sender abandoned mid-way as a rejected request, whichever path served it', async () => {
    const rejected = async () =>
      (await ingest.metrics.text())
        .split('\n')
        .filter((l) =>
          /^(falcosecurity_falcosidekick_inputs_total|eyrie_ingest_rejected_requests_total)/.test(l),
        )
        .filter((l) => /rejected|_rejected_/.test(l));
    const before = await rejected();
    const { port } = new URL(ingest.url);
    for (const path of ['/', '/falco', '/api/v1/events/add']) {
      const socket = netConnect(Number(port), '127.0.0.1');
      socket.on('error', () => {});
      socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${event.length}\r\n\r\n`);
      socket.write(event.slice(0, 50));
      await new Promise((r) => setTimeout(r, 50));
      socket.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await rejected(), before);
  });

  it('counts what each request held: one invalid event, none in an empty body, the test event, a GET', async () => {
    const counts = async () => {
      const text = await ingest.metrics.text();
      return {
        inputsAccepted: metricValue(text, 'falcosecurity_falcosidekick_inputs_total', {
          source: 'requests',
          status: 'accepted',
        }),
        inputsRejected: metricValue(text, 'falcosecurity_falcosidekick_inputs_total', {
          source: 'requests',
          status: 'rejected',
        }),
        accepted: metricValue(text, 'eyrie_ingest_events_total', { source: 'http', outcome: 'accepted' }),
        rejected: metricValue(text, 'eyrie_ingest_events_total', { source: 'http', outcome: 'rejected' }),
        refused: metricValue(text, 'eyrie_ingest_events_total', { source: 'http', outcome: 'refused' }),
      };
    };
    const change = async (send: () => Promise<unknown>) => {
      const before = await counts();
      await send();
      const after = await counts();
      return Object.fromEntries(
        Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]]),
      );
    };
    const none = { inputsAccepted: 0, inputsRejected: 0, accepted: 0, rejected: 0, refused: 0 };
    const postTest = async () => {
      const res = await request(new URL('/test', ingest.url), { method: 'POST' });
      await res.body.text();
      return res.statusCode;
    };
    const get = async (path: string) => (await request(new URL(path, ingest.url))).body.text();

    for (const body of [
      '{"output":"x"}',
      '{"rule":"r","priority":"Warning","time":"bad","output":"x"}',
      '{no',
    ]) {
      assert.deepEqual(
        await change(() => post(ingest.url, body)),
        { ...none, inputsRejected: 1, rejected: 1 },
        body,
      );
    }
    assert.deepEqual(await change(() => post(ingest.url, '  ')), { ...none, inputsRejected: 1 }, 'empty');
    assert.deepEqual(await change(postTest), { ...none, inputsAccepted: 1, accepted: 1 }, '/test');
    ingest.router.refuse = new JournalUnavailableError('disk cap reached');
    try {
      let status = 0;
      assert.deepEqual(
        await change(async () => (status = await postTest())),
        { ...none, inputsRejected: 1, refused: 1 },
        '/test refused',
      );
      assert.equal(status, 503);
    } finally {
      ingest.router.refuse = undefined;
    }
    // Falcosidekick answers any other method on its catch-all "/" with a 400 and counts it.
    for (const path of ['/', '/nope'])
      assert.deepEqual(await change(() => get(path)), { ...none, inputsRejected: 1 }, `GET ${path}`);
    assert.deepEqual(await change(() => get('/ping')), none, 'GET /ping');
  });

  it('answers 503 when the journal cannot persist, counting the request as rejected', async () => {
    const rejected = () =>
      ingest.metrics.sidekickInputs.metric
        .get()
        .then((m) => m.values.find((v) => v.labels.status === 'rejected')?.value ?? 0);
    const refusedEvents = () =>
      ingest.metrics.ingestEvents.metric
        .get()
        .then(
          (m) =>
            m.values.find((v) => v.labels.source === 'http' && v.labels.outcome === 'refused')?.value ?? 0,
        );
    const before = await rejected();
    const eventsBefore = await refusedEvents();
    ingest.router.refuse = new JournalUnavailableError('disk cap reached');
    try {
      const refused = await post(ingest.url, event);
      assert.equal(refused.status, 503);
      assert.match(refused.text, /disk cap/);
    } finally {
      ingest.router.refuse = undefined;
    }
    assert.equal(await rejected(), before + 1);
    assert.equal(await refusedEvents(), eventsBefore + 1, 'its event counted as refused');
  });

  it('takes a POST on any other path as an event, as Falcosidekick does; 404 and 405 (with Allow) otherwise', async () => {
    const before = ingest.router.events.length;
    const elsewhere = await post(ingest.url, event, undefined, '/falco/events?x=1');
    assert.equal(elsewhere.status, 200);
    assert.equal(ingest.router.events.length, before + 1);
    const invalid = await post(ingest.url, '{"rule":"x"}', undefined, '/falco');
    assert.equal(invalid.status, 400, 'validated like POST /');
    const unknown = await request(`${ingest.url}/nope`);
    assert.equal(unknown.statusCode, 404);
    await unknown.body.text();
    const get = await request(ingest.url);
    assert.equal(get.statusCode, 405);
    assert.equal(get.headers.allow, 'POST');
    await get.body.text();
    const postHealth = await post(ingest.url, '{}', undefined, '/healthz');
    assert.equal(postHealth.status, 405);
    assert.equal(postHealth.headers.allow, 'GET, HEAD');
  });

  it('ingests the whole generated corpus, edge cases included, over many keep-alive connections', async () => {
    const lines = generateEvents(1500, { edgeCases: true, seed: 11 });
    const agent = new Agent({ connections: 16 });
    const before = ingest.router.events.length;
    try {
      const statuses = await Promise.all(
        lines.map(async (body) => {
          const res = await request(ingest.url, {
            method: 'POST',
            body,
            headers: { 'content-type': 'application/json' },
            dispatcher: agent,
          });
          await res.body.text();
          return res.statusCode;
        }),
      );
      // Lines over the 64 KiB test limit do not exist in the corpus: every event must be accepted.
      assert.deepEqual([...new Set(statuses)], [200]);
      assert.equal(ingest.router.events.length, before + lines.length);
      // Each line exactly once (a duplicate could not hide a missing one), whole.
      const key = (e: FalcoEvent) => toSidekickJson({ ...e, uuid: '' });
      const got = ingest.router.events.slice(before).map(key).sort();
      const expected = lines.map((l) => key(parseFalcoEvent(l))).sort();
      assert.deepEqual(got, expected);
    } finally {
      await agent.close();
    }
  });
});

describe('ingest bearer tokens', () => {
  let ingest: TestIngest;
  before(async () => {
    ingest = await startIngest(testConfig((c) => (c.auth.tokens = ['s3cret-token', 'second-token'])));
  });
  after(() => ingest.close());

  it('answers 401 without a token, 403 with a wrong one, 200 with any configured token', async () => {
    const none = await post(ingest.url, event);
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    assert.equal(
      (await post(ingest.url, event, { 'content-type': 'application/json', authorization: 'Bearer wrong' }))
        .status,
      403,
    );
    assert.equal(
      (
        await post(ingest.url, event, {
          'content-type': 'application/json',
          authorization: 'Bearer s3cret-token',
        })
      ).status,
      200,
    );
    assert.equal(
      (
        await post(ingest.url, event, {
          'content-type': 'application/json',
          authorization: 'bearer second-token',
        })
      ).status,
      200,
    );
  });

  it('leaves /healthz, /ping and /metrics open for probes and scrapers', async () => {
    for (const path of ['/healthz', '/ping', '/metrics']) {
      const res = await request(new URL(path, ingest.url));
      await res.body.text();
      assert.equal(res.statusCode, 200, path);
    }
    const test = await request(new URL('/test', ingest.url), { method: 'POST' });
    await test.body.text();
    assert.equal(test.statusCode, 401);
  });
});

describe('keep_alive_timeout', () => {
  it('takes one longer than a Node timer: idle connections stay open, no timer overflow', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    const ingest = await startIngest(
      testConfig((c) => (c.listen.keep_alive_timeout = 30 * 24 * 3600 * 1000)),
    );
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set<unknown>();
      for (let i = 0; i < 2; i++) {
        await new Promise<void>((resolve, reject) => {
          const req = httpRequest(ingest.url, { method: 'POST', agent }, (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on('end', resolve);
          });
          req.on('error', reject);
          req.end(event);
        });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(sockets.size, 1, 'the idle connection was kept and reused');
      assert.deepEqual(warnings, []);
    } finally {
      agent.destroy();
      process.off('warning', onWarning);
      await ingest.close();
    }
  });
});

describe('while the journal refuses events', () => {
  it('logs the refusal once per 10 s, not once per request, counting the ones held back', async () => {
    const { logger, warnings } = warningsLogger();
    const ingest = await startIngest(testConfig(), { logger });
    try {
      ingest.router.refuse = new JournalUnavailableError('disk cap reached');
      for (let i = 0; i < 5; i++) assert.equal((await post(ingest.url, event)).status, 503);
      const refusals = warnings.filter((w) => String(w.msg).startsWith('journal unavailable'));
      assert.equal(refusals.length, 1, JSON.stringify(warnings));
      assert.equal(refusals[0]!.level, 50, 'an error');
      assert.equal(refusals[0]!.refusedSinceLastLog, 0);
    } finally {
      await ingest.close();
    }
  });

  it('logs the end of the refusals once, with the count held back since the last refusal line', async () => {
    const { logger, warnings: lines } = warningsLogger('info');
    const ingest = await startIngest(testConfig(), { logger });
    const ends = () => lines.filter((l) => String(l.msg).startsWith('journal accepting events again'));
    try {
      ingest.router.refuse = new JournalUnavailableError('disk cap reached');
      for (let i = 0; i < 3; i++) assert.equal((await post(ingest.url, event)).status, 503);
      ingest.router.refuse = undefined;
      for (let i = 0; i < 3; i++) assert.equal((await post(ingest.url, event)).status, 200);
      assert.equal(ends().length, 1, JSON.stringify(lines));
      assert.equal(ends()[0]!.refusedSinceLastLog, 2, 'the two refusals after the logged one');
      // Refused again within 10 s: held back, and so is its end (at most one end per refusal line).
      ingest.router.refuse = new JournalUnavailableError('disk cap reached');
      assert.equal((await post(ingest.url, event)).status, 503);
      ingest.router.refuse = undefined;
      assert.equal((await post(ingest.url, event)).status, 200);
      assert.equal(ends().length, 1);
    } finally {
      await ingest.close();
    }
  });

  it('does not log an end for a request begun before the refusal and committed after it', async () => {
    const { logger, warnings: lines } = warningsLogger('info');
    const ingest = await startIngest(testConfig(), { logger });
    try {
      let open: () => void = () => {};
      ingest.router.gate = new Promise<void>((resolve) => (open = resolve));
      const early = post(ingest.url, event);
      await waitFor(() => ingest.router.calls === 1);
      ingest.router.gate = undefined;
      ingest.router.refuse = new JournalUnavailableError('disk cap reached');
      assert.equal((await post(ingest.url, event)).status, 503);
      ingest.router.refuse = undefined; // so the early one, let go, is accepted
      open();
      assert.equal((await early).status, 200);
      const ends = lines.filter((l) => String(l.msg).startsWith('journal accepting events again'));
      assert.deepEqual(
        ends,
        [],
        'the journal may still refuse: nothing begun after the refusal was accepted',
      );
    } finally {
      await ingest.close();
    }
  });
});

describe('shutdown with a request in flight on a keep-alive connection', () => {
  for (const path of ['/', '/falco']) {
    it(`answers it and closes the connection at once, not after keep_alive_timeout (POST ${path})`, async () => {
      const ingest = await startIngest();
      let open: () => void = () => {};
      ingest.router.gate = new Promise<void>((resolve) => (open = resolve));
      const agent = new HttpAgent({ keepAlive: true });
      try {
        const answered = new Promise<number>((resolve, reject) => {
          const req = httpRequest(
            new URL(path, ingest.url),
            { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
            (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode!));
            },
          );
          req.on('error', reject);
          req.end(event);
        });
        await waitFor(() => ingest.router.calls === 1);
        let closed = false;
        const closing = ingest.close().then(() => (closed = true));
        await new Promise((resolve) => setTimeout(resolve, 50));
        open();
        assert.equal(await answered, 200, 'the event was taken before the shutdown: it is answered');
        // keep_alive_timeout is 75 s: a close() that waited for the idle socket would still be pending.
        await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5000))]);
        assert.ok(closed, 'close() finished once the answer was sent');
      } finally {
        open();
        agent.destroy();
        await ingest.close().catch(() => {});
      }
    });

    it(`answers every request pipelined on the connection before closing it (POST ${path})`, async () => {
      const ingest = await startIngest();
      let open: () => void = () => {};
      ingest.router.gate = new Promise<void>((resolve) => (open = resolve));
      const conn = rawConnection(ingest.url);
      try {
        conn.socket.write(rawPost(conn.host, path, event).repeat(3));
        await waitFor(() => ingest.router.calls >= 1);
        let closed = false;
        const closing = ingest.close().then(() => (closed = true));
        await new Promise((resolve) => setTimeout(resolve, 50));
        open();
        await Promise.race([conn.ended, new Promise((resolve) => setTimeout(resolve, 5000))]);
        assert.equal(ingest.router.events.length, 3, 'all three events were taken');
        assert.equal(
          conn.received().match(/^HTTP\/1\.1 200 /gm)?.length ?? 0,
          3,
          `every taken event is answered, got:\n${conn.received()}`,
        );
        await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5000))]);
        assert.ok(closed, 'close() finished once the answers were sent');
      } finally {
        open();
        conn.socket.destroy();
        await ingest.close().catch(() => {});
      }
    });
  }

  it('closes a connection answered before its body arrived once the body is in (401)', async () => {
    const ingest = await startIngest(
      testConfig((c) => {
        c.auth.tokens = ['secret'];
      }),
    );
    const conn = rawConnection(ingest.url);
    try {
      // The headers and the first bytes of the body: the 401 goes out before the rest arrives.
      conn.socket.write(rawPost(conn.host, '/', event).slice(0, -(event.length - 5)));
      await waitFor(() => /^HTTP\/1\.1 401 /.test(conn.received()));
      let closed = false;
      const closing = ingest.close().then(() => (closed = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      conn.socket.write(event.slice(5));
      await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5000))]);
      assert.ok(closed, 'close() did not wait out keep_alive_timeout');
    } finally {
      conn.socket.destroy();
      await ingest.close().catch(() => {});
    }
  });
});

/** A plain TCP connection to `baseUrl`, collecting what comes back (for pipelining and partial bodies). */
function rawConnection(baseUrl: string) {
  const url = new URL(baseUrl);
  const socket = netConnect(Number(url.port), url.hostname);
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, host: url.host, received: () => received, ended };
}

/** One HTTP/1.1 POST of a JSON body, as raw bytes. */
function rawPost(host: string, path: string, body: string): string {
  return (
    `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(check(), 'condition not met within 5 s');
}
