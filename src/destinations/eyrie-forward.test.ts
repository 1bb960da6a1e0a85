import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { RequestConfig } from '../config/types.ts';
import { HttpStatusError, PartialRejectionError, PermanentError } from '../delivery/errors.ts';
import { parseFalcoEvent, type FalcoEvent } from '../event/falco-event.ts';
import { stringifyJson, type ExactNumber } from '../event/json.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import type { DestinationContext } from './types.ts';
import { eyrieForwardDestination, type EyrieForwardOptions } from './eyrie-forward.ts';
import {
  startRecordingServer,
  type RecordingServer,
  type Script,
} from '../../test/helpers/recording-server.ts';
import { startIngest, testConfig, type TestIngest } from '../../test/helpers/ingest.ts';

const request: RequestConfig = {
  timeout: 5000,
  connect_timeout: 2000,
  headers: {},
  tls: { verify: true, ca_file: '', cert_file: '', key_file: '' },
  proxy: '',
  auth: { username: '', password: '', bearer_token: '' },
  gzip: false,
};

function capture(): { context: DestinationContext; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { context: { name: 'central', logger, request, dataDir: '/nonexistent' }, logs };
}

const options = (patch: Partial<EyrieForwardOptions> & { url: string }): EyrieForwardOptions => ({
  token: '',
  gzip: true,
  ...patch,
});

function makeEvent(i: number): FalcoEvent {
  const uuid = `6f0c7a2e-1b3d-4e5f-8a9b-${String(i).padStart(12, '0')}`;
  return parseFalcoEvent(
    `{"uuid":"${uuid}","output":"09:00:01.000000123: Notice shell ${i} <b>","priority":"Notice","rule":"Terminal shell in container","time":"2026-01-01T09:00:01.00000012${i % 10}Z","output_fields":{"evt.time":176725800100000012${i % 10},"proc.name":"sh","n":${i}},"source":"syscall","tags":["container"],"hostname":"edge-1"}`,
  );
}

const linesOf = (req: { text: string }): string[] => req.text.split('\n').filter((l) => l !== '');

/** A receiving Eyrie's answer when it takes every event of the request. */
const takesAll = (req: { text: string }): Script => ({
  body: JSON.stringify({ accepted: linesOf(req).length, rejected: 0, errors: [] }),
});

/** The PartialRejectionError a send fails with. */
async function rejection(send: Promise<void>): Promise<PartialRejectionError> {
  try {
    await send;
  } catch (err) {
    if (err instanceof PartialRejectionError) return err;
    throw err;
  }
  assert.fail('expected a PartialRejectionError');
}

describe('eyrie forward destination → a real Eyrie ingest', () => {
  let ingest: TestIngest;
  before(async () => {
    ingest = await startIngest(testConfig((c) => (c.auth.tokens = ['edge-token'])));
  });
  after(() => ingest.close());

  it('delivers a gzipped NDJSON batch with the bearer token; uuid, time and evt.time digits survive the hop', async () => {
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: ingest.url, token: 'edge-token' }), context);
    const events = [1, 2, 3].map(makeEvent);
    try {
      await dest.send(events);
    } finally {
      await dest.close();
    }
    const got = ingest.router.events.slice(-3);
    assert.deepEqual(
      got.map((e) => e.uuid),
      events.map((e) => e.uuid),
    );
    assert.deepEqual(
      got.map((e) => e.time),
      ['2026-01-01T09:00:01.000000121Z', '2026-01-01T09:00:01.000000122Z', '2026-01-01T09:00:01.000000123Z'],
    );
    assert.equal((got[2]!.output_fields['evt.time'] as ExactNumber).text, '1767258001000000123');
    assert.deepEqual(got.map(toSidekickJson), events.map(toSidekickJson));
  });

  it("refuses an answer that is not an ingest's (url on /test): the events were not taken", async () => {
    const { context } = capture();
    const dest = eyrieForwardDestination.create(
      options({ url: `${ingest.url}/test`, token: 'edge-token' }),
      context,
    );
    const before = ingest.router.events.length;
    try {
      await assert.rejects(
        dest.send([makeEvent(1), makeEvent(2)]),
        (err: unknown) =>
          err instanceof PermanentError &&
          /\/test answered 200 without an Eyrie ingest's \{"accepted", "rejected"\} \(""\): url must be the receiving Eyrie's ingest path, \/$/.test(
            err.message,
          ),
      );
    } finally {
      await dest.close();
    }
    // The receiver made its own test event of it; neither forwarded event arrived.
    const uuids = ingest.router.events.slice(before).map((e) => e.uuid);
    assert.ok(!uuids.includes(makeEvent(1).uuid) && !uuids.includes(makeEvent(2).uuid));
  });

  it('an event too large for the receiver fails alone; the others of its batch are delivered', async () => {
    const small = await startIngest(testConfig((c) => (c.listen.body_limit = 4096)));
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: small.url, gzip: false }), context);
    const events = [1, 2, 3, 4, 5, 6].map(makeEvent);
    events[4] = { ...events[4]!, output: events[4]!.output + ' '.repeat(5000) };
    try {
      const err = await rejection(dest.send(events));
      assert.deepEqual(err.rejected, []);
      assert.deepEqual(
        err.failed.map((f) => [f.indices, f.error instanceof HttpStatusError && f.error.status]),
        [[[4], 413]],
      );
    } finally {
      await dest.close();
      await small.close();
    }
    assert.deepEqual(
      small.router.events.map((e) => e.uuid),
      [0, 1, 2, 3, 5].map((i) => events[i]!.uuid),
    );
  });

  it('a half with no valid event for the receiver (400) goes to dead letters as rejected, with its reasons', async () => {
    const small = await startIngest(testConfig((c) => (c.listen.body_limit = 4096)));
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: small.url, gzip: false }), context);
    // Four events of about 1.2 KB: the batch is refused as too large (413), each half fits.
    const events = [1, 2, 3, 4].map((i) => {
      const e = makeEvent(i);
      return { ...e, output: e.output + ' '.repeat(900), rule: i <= 2 ? '' : e.rule };
    });
    try {
      const err = await rejection(dest.send(events));
      assert.deepEqual(err.failed, []);
      assert.deepEqual(err.rejected, [
        { index: 0, message: 'rejected by the receiver: missing "rule"' },
        { index: 1, message: 'rejected by the receiver: missing "rule"' },
      ]);
    } finally {
      await dest.close();
      await small.close();
    }
    assert.deepEqual(
      small.router.events.map((e) => e.uuid),
      [2, 3].map((i) => events[i]!.uuid),
    );
  });

  it('reads a 400 listing 100 problems whole: a large batch with no valid event is rejected, not a permanent_400', async () => {
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: ingest.url, token: 'edge-token' }), context);
    const events = Array.from({ length: 150 }, (_, i) => ({ ...makeEvent(i), rule: '' }));
    try {
      const err = await rejection(dest.send(events));
      assert.equal(err.rejected.length, 150);
      assert.equal(err.rejected[0]!.message, 'rejected by the receiver: missing "rule"');
      assert.match(err.rejected[149]!.message, /^rejected by the receiver: no valid event in the batch/);
    } finally {
      await dest.close();
    }
  });

  it('fails with HttpStatusError when the token is refused', async () => {
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: ingest.url, token: 'wrong' }), context);
    try {
      await assert.rejects(
        dest.send([makeEvent(1)]),
        (e: unknown) => e instanceof HttpStatusError && e.status === 403,
      );
    } finally {
      await dest.close();
    }
  });
});

describe('eyrie forward destination: wire format and answers', () => {
  let server: RecordingServer;
  before(async () => {
    server = await startRecordingServer();
  });
  after(() => server.close());

  it('POSTs NDJSON, one Falcosidekick JSON line per event, gzipped, with the token', async () => {
    server.reset();
    server.respondWith(() => ({
      body: '{"accepted":2,"rejected":0,"errors":[]}',
      headers: { 'content-type': 'application/json' },
    }));
    const { context, logs } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url, token: 's3cret' }), context);
    const events = [makeEvent(1), makeEvent(2)];
    try {
      await dest.send(events);
    } finally {
      await dest.close();
    }
    const r = server.requests[0]!;
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/');
    assert.equal(r.headers['content-type'], 'application/x-ndjson');
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(r.headers.authorization, 'Bearer s3cret');
    assert.equal(r.body[0], 0x1f);
    assert.equal(r.text, `${toSidekickJson(events[0]!)}\n${toSidekickJson(events[1]!)}\n`);
    assert.equal(logs.filter((l) => (l.level as number) >= 40).length, 0);
  });

  it('keeps each body within batch.max_bytes though Falcosidekick JSON escapes <, > and & (no 413 first)', async () => {
    server.reset();
    server.respondWith(takesAll);
    // `<NA>` is 4 bytes as journaled (what the queue counts) and 14 in the body (\u003cNA\u003e).
    const events = Array.from({ length: 8 }, (_, i) => {
      const e = makeEvent(i);
      return { ...e, output: e.output + ' <NA>'.repeat(30) };
    });
    const journaled = events.reduce((n, e) => n + Buffer.byteLength(stringifyJson(e)), 0);
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url, gzip: false }), {
      ...context,
      batch: { max_events: 500, max_bytes: journaled, timeout: 1000 },
    });
    try {
      await dest.send(events);
    } finally {
      await dest.close();
    }
    assert.ok(server.requests.length > 1);
    for (const r of server.requests) {
      const lines = linesOf(r);
      assert.ok(r.body.length - lines.length <= journaled, `a body of ${r.body.length} bytes`);
    }
    assert.deepEqual(
      server.requests.flatMap((r) => linesOf(r)),
      events.map((e) => toSidekickJson(e)),
    );
  });

  it('sends plain NDJSON with gzip: false', async () => {
    server.reset();
    server.respondWith(takesAll);
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url, gzip: false }), context);
    try {
      await dest.send([makeEvent(1)]);
    } finally {
      await dest.close();
    }
    assert.equal(server.requests[0]!.headers['content-encoding'], undefined);
    assert.equal(server.requests[0]!.headers.authorization, undefined);
    assert.equal(server.requests[0]!.body.toString('utf8'), `${toSidekickJson(makeEvent(1))}\n`);
  });

  it('names the events the receiver rejects, by index, for dead letters (the rest are delivered)', async () => {
    server.reset();
    server.respondWith(() => ({
      body: JSON.stringify({
        accepted: 2,
        rejected: 1,
        errors: [{ index: 1, message: 'unknown priority "warn"' }],
      }),
      headers: { 'content-type': 'application/json' },
    }));
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url }), context);
    try {
      const err = await rejection(dest.send([makeEvent(1), makeEvent(2), makeEvent(3)]));
      assert.deepEqual(err.rejected, [
        { index: 1, message: 'rejected by the receiver: unknown priority "warn"' },
      ]);
    } finally {
      await dest.close();
    }
  });

  it('rejections the receiver did not list (it lists its first 100) make every unlisted event a dead letter: no loss', async () => {
    server.reset();
    server.respondWith(() => ({
      body: JSON.stringify({ accepted: 1, rejected: 2, errors: [{ index: 0, message: 'bad' }] }),
    }));
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url }), context);
    try {
      const err = await rejection(dest.send([makeEvent(1), makeEvent(2), makeEvent(3)]));
      assert.deepEqual(
        err.rejected.map((r) => r.index),
        [0, 1, 2],
      );
      assert.match(err.rejected[1]!.message, /rejected 2 events of this batch of 3 and listed 1/);
    } finally {
      await dest.close();
    }
  });

  it('rejections in the halves of a split batch keep their index in the whole batch', async () => {
    server.reset();
    server.respondWith((req) => {
      const lines = req.text.split('\n').filter((l) => l !== '');
      if (lines.length > 2) return { status: 413, body: 'too large' };
      return {
        body: JSON.stringify({
          accepted: lines.length - 1,
          rejected: 1,
          errors: [{ index: 0, message: 'x' }],
        }),
      };
    });
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url }), context);
    try {
      const err = await rejection(dest.send([1, 2, 3, 4].map(makeEvent)));
      assert.deepEqual(
        err.rejected.map((r) => r.index),
        [0, 2],
      );
    } finally {
      await dest.close();
    }
  });

  it('a 400 that is not an ingest answer for the whole batch stays an HttpStatusError', async () => {
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url }), context);
    try {
      for (const body of [
        'bad request',
        JSON.stringify({ rejected: 1, errors: [{ index: 0, message: 'x' }] }),
      ]) {
        server.reset();
        server.respondWith(() => ({ status: 400, body }));
        await assert.rejects(
          dest.send([makeEvent(1), makeEvent(2)]),
          (e: unknown) => e instanceof HttpStatusError && e.status === 400,
        );
      }
    } finally {
      await dest.close();
    }
  });

  it('throws HttpStatusError on a non-2xx, with Retry-After', async () => {
    server.respondWith(() => ({ status: 503, headers: { 'retry-after': '3' }, body: 'closing' }));
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url }), context);
    try {
      await assert.rejects(
        dest.send([makeEvent(1)]),
        (e: unknown) => e instanceof HttpStatusError && e.status === 503 && e.retryAfterMs === 3000,
      );
    } finally {
      await dest.close();
    }
  });

  it('splits a batch the receiver refuses as too large (413)', async () => {
    server.reset();
    server.respondWith((req) =>
      linesOf(req).length > 2 ? { status: 413, body: 'too large' } : takesAll(req),
    );
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url }), context);
    const events = [1, 2, 3, 4, 5].map(makeEvent);
    try {
      await dest.send(events);
    } finally {
      await dest.close();
    }
    const lines = server.requests.map((r) => r.text.split('\n').filter((l) => l !== ''));
    // 5 → 413; 3 → 413; then 2, 1 and 2 accepted, in order.
    assert.deepEqual(
      lines.map((l) => l.length),
      [5, 3, 2, 1, 2],
    );
    assert.deepEqual(lines.slice(2).flat(), events.map(toSidekickJson));
  });

  it('gives up splitting at one event, and still sends the other half', async () => {
    server.reset();
    server.respondWith(() => ({ status: 413, body: 'too large' }));
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url }), context);
    try {
      const err = await rejection(dest.send([makeEvent(1), makeEvent(2)]));
      assert.deepEqual(err.rejected, []);
      assert.deepEqual(
        err.failed.map((f) => [f.indices, f.error instanceof HttpStatusError && f.error.status]),
        [
          [[0], 413],
          [[1], 413],
        ],
      );
    } finally {
      await dest.close();
    }
    // Both, then each half alone: no request of zero events.
    const sizes = server.requests.map((r) => r.text.split('\n').filter((l) => l !== '').length);
    assert.deepEqual(sizes, [2, 1, 1]);
  });

  it('reports a half that fails with its own error: the delivered half is not sent again', async () => {
    server.reset();
    server.respondWith((req) => {
      const lines = req.text.split('\n').filter((l) => l !== '');
      if (lines.length > 2) return { status: 413, body: 'too large' };
      return lines.some((l) => l.includes('"n":3')) ? { status: 503, body: 'busy' } : takesAll(req);
    });
    const { context } = capture();
    const dest = eyrieForwardDestination.create(options({ url: server.url }), context);
    try {
      const err = await rejection(dest.send([1, 2, 3, 4].map(makeEvent)));
      assert.deepEqual(err.rejected, []);
      assert.equal(err.failed.length, 1);
      assert.deepEqual(err.failed[0]!.indices, [2, 3], 'only the half that failed');
      assert.ok(err.failed[0]!.error instanceof HttpStatusError && err.failed[0]!.error.status === 503);
    } finally {
      await dest.close();
    }
    const sizes = server.requests.map((r) => r.text.split('\n').filter((l) => l !== '').length);
    assert.deepEqual(sizes, [4, 2, 2]);
  });

  it('settles a split batch within the time the worker gives the send, and splits at the refused size from then on', async () => {
    // A slow receiver that takes 2 events at most: 64 events need 5 refusals (64, 32, 16, 8, 4) and 32
    // sends of 200 ms, about 7.4 s, past the worker's limit for the send (request.timeout + 5 s). The
    // worker would then retry the whole batch, halves already delivered included, attempt after attempt.
    server.reset();
    server.respondWith((req) => ({
      delayMs: 200,
      ...(linesOf(req).length > 2 ? { status: 413, body: 'too large' } : takesAll(req)),
    }));
    const { context } = capture();
    context.request = { ...request, timeout: 400 };
    const dest = eyrieForwardDestination.create(options({ url: server.url, gzip: false }), context);
    const events = Array.from({ length: 64 }, (_, i) => makeEvent(i));
    let pending = events;
    const rounds: { sent: number; ms: number; requests: number[] }[] = [];
    try {
      while (pending.length > 0 && rounds.length < 6) {
        const before = server.requests.length;
        const started = Date.now();
        let failed: number[] = [];
        try {
          await dest.send(pending);
        } catch (err) {
          if (!(err instanceof PartialRejectionError)) throw err;
          assert.deepEqual(err.rejected, []);
          for (const f of err.failed) {
            assert.equal((f.error as { code?: string }).code, 'ETIMEDOUT', String(f.error));
            failed.push(...f.indices);
          }
        }
        rounds.push({
          sent: pending.length,
          ms: Date.now() - started,
          requests: server.requests
            .slice(before)
            .map((r) => r.text.split('\n').filter((l) => l !== '').length),
        });
        failed = failed.sort((a, b) => a - b);
        pending = failed.map((i) => pending[i]!);
      }
    } finally {
      await dest.close();
    }
    assert.equal(pending.length, 0, JSON.stringify(rounds));
    assert.ok(rounds.length >= 2, 'the first send ran out of time');
    for (const r of rounds) assert.ok(r.ms < 400 + 5000, `settled in ${r.ms} ms: ${JSON.stringify(rounds)}`);
    // Every event reached the receiver once: nothing delivered was sent again.
    const accepted = server.requests
      .filter((r) => r.text.split('\n').filter((l) => l !== '').length <= 2)
      .flatMap((r) => r.text.split('\n').filter((l) => l !== ''));
    assert.deepEqual([...accepted].sort(), events.map(toSidekickJson).sort());
    // Later sends split what the receiver refused before without asking it again.
    for (const r of rounds.slice(1))
      assert.ok(
        r.requests.every((n) => n <= 3),
        JSON.stringify(r.requests),
      );
  });

  it('declares its batch policy, secrets and schema defaults', () => {
    assert.deepEqual(eyrieForwardDestination.batch, {
      max_events: 500,
      max_bytes: 960 * 1024,
      timeout: 1000,
    });
    assert.deepEqual(eyrieForwardDestination.secretOptions, ['token']);
    assert.equal(eyrieForwardDestination.type, 'eyrie');
    const props = (
      eyrieForwardDestination.optionsSchema as unknown as {
        properties: Record<string, { default?: unknown }>;
      }
    ).properties;
    assert.equal(props.gzip!.default, true);
    assert.equal(props.token!.default, '');
  });
});
