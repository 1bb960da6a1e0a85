import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { pino } from 'pino';
import type { RequestConfig } from '../config/types.ts';
import { HttpStatusError } from '../delivery/errors.ts';
import { parseFalcoEvent } from '../event/falco-event.ts';
import type { DestinationContext } from './types.ts';
import { webhookDestination, type WebhookOptions } from './webhook.ts';
import { startRecordingServer, type RecordingServer } from '../../test/helpers/recording-server.ts';

const request: RequestConfig = {
  timeout: 5000,
  connect_timeout: 2000,
  headers: {},
  tls: { verify: true, ca_file: '', cert_file: '', key_file: '' },
  proxy: '',
  auth: { username: '', password: '', bearer_token: '' },
  gzip: false,
};

const context = (patch: Partial<RequestConfig> = {}): DestinationContext => ({
  name: 'hook',
  logger: pino({ level: 'silent' }),
  request: { ...request, ...patch },
  dataDir: '/nonexistent',
});

const event = parseFalcoEvent(
  '{"uuid":"0C2F4E8A-5B6D-4C3E-9F1A-2B3C4D5E6F70","output":"09:00:01.000000123: Notice A shell was spawned <sh> & more","priority":"Notice","rule":"Terminal shell in container","time":"2026-01-01T09:00:01.000000120Z","output_fields":{"proc.name":"sh","evt.time":1767258001000000123,"container.id":"abc123","k8s.ns.name":null,"fd.num":3.50},"source":"syscall","tags":["container","shell"],"hostname":"node-a"}',
);

/** What Falcosidekick's json.NewEncoder(...).Encode(FalcoPayload) writes for `event`. */
const SIDEKICK_BODY =
  '{"uuid":"0c2f4e8a-5b6d-4c3e-9f1a-2b3c4d5e6f70","output":"09:00:01.000000123: Notice A shell was spawned \\u003csh\\u003e \\u0026 more","priority":"Notice","rule":"Terminal shell in container","time":"2026-01-01T09:00:01.00000012Z","output_fields":{"container.id":"abc123","evt.time":1767258001000000123,"fd.num":3.50,"k8s.ns.name":null,"proc.name":"sh"},"source":"syscall","tags":["container","shell"],"hostname":"node-a"}\n';

function rawHeader(raw: string[], name: string): [string, string] | undefined {
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.toLowerCase() === name.toLowerCase()) return [raw[i]!, raw[i + 1]!];
  return undefined;
}

const options = (patch: Partial<WebhookOptions> & { address: string }): WebhookOptions => ({
  method: 'POST',
  custom_headers: {},
  ...patch,
});

describe('webhook destination', () => {
  let server: RecordingServer;
  before(async () => {
    server = await startRecordingServer();
  });
  after(() => server.close());

  it('POSTs exactly what Falcosidekick sends', async () => {
    server.reset();
    const dest = webhookDestination.create(
      options({ address: `${server.url}falco/events?src=eyrie` }),
      context(),
    );
    try {
      await dest.send([event]);
    } finally {
      await dest.close();
    }
    const [r] = await server.waitFor(1);
    assert.equal(r!.method, 'POST');
    assert.equal(r!.url, '/falco/events?src=eyrie');
    assert.equal(r!.body.toString('utf8'), SIDEKICK_BODY);
    assert.deepEqual(rawHeader(r!.rawHeaders, 'content-type'), [
      'Content-Type',
      'application/json; charset=utf-8',
    ]);
    assert.deepEqual(rawHeader(r!.rawHeaders, 'user-agent'), ['User-Agent', 'Falcosidekick']);
    assert.deepEqual(rawHeader(r!.rawHeaders, 'accept-encoding'), ['Accept-Encoding', 'gzip']);
    assert.equal(r!.headers['content-length'], String(Buffer.byteLength(SIDEKICK_BODY)));
    assert.equal(r!.headers['content-encoding'], undefined);
    assert.equal(r!.headers.authorization, undefined);
  });

  it('uses PUT and adds custom headers (Go canonical names, able to replace defaults)', async () => {
    server.reset();
    const dest = webhookDestination.create(
      options({
        address: server.url,
        method: 'put',
        custom_headers: {
          authorization: 'Bearer abc',
          'x-tenant': 'blue',
          'Content-Type': 'application/json',
        },
      }),
      context(),
    );
    try {
      await dest.send([event]);
    } finally {
      await dest.close();
    }
    const r = server.requests[0]!;
    assert.equal(r.method, 'PUT');
    assert.equal(r.text, SIDEKICK_BODY);
    assert.deepEqual(rawHeader(r.rawHeaders, 'authorization'), ['Authorization', 'Bearer abc']);
    assert.deepEqual(rawHeader(r.rawHeaders, 'x-tenant'), ['X-Tenant', 'blue']);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['user-agent'], 'Falcosidekick');
  });

  it('sends one request per event', async () => {
    server.reset();
    const second = { ...event, uuid: '11111111-2222-4333-8444-555555555555' };
    const dest = webhookDestination.create(options({ address: server.url }), context());
    try {
      await dest.send([event, second]);
    } finally {
      await dest.close();
    }
    assert.equal(server.requests.length, 2);
    assert.match(server.requests[1]!.text, /^\{"uuid":"11111111-2222-4333-8444-555555555555"/);
  });

  it('applies the shared request options (bearer auth, gzip)', async () => {
    server.reset();
    const dest = webhookDestination.create(
      options({ address: server.url }),
      context({ gzip: true, auth: { username: '', password: '', bearer_token: 'tok' } }),
    );
    try {
      await dest.send([event]);
    } finally {
      await dest.close();
    }
    const r = server.requests[0]!;
    assert.equal(r.headers.authorization, 'Bearer tok');
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(r.text, SIDEKICK_BODY);
  });

  it('throws HttpStatusError on a 500', async () => {
    server.respondWith(() => ({ status: 500, body: 'boom' }));
    const dest = webhookDestination.create(options({ address: server.url }), context());
    try {
      await assert.rejects(
        dest.send([event]),
        (e: unknown) => e instanceof HttpStatusError && e.status === 500 && e.body === 'boom',
      );
    } finally {
      server.respondWith(() => ({}));
      await dest.close();
    }
  });

  it('refuses a method other than POST or PUT at creation', () => {
    assert.throws(
      () => webhookDestination.create(options({ address: server.url, method: 'GET' }), context()),
      /POST or PUT/,
    );
  });
});

describe('webhook options schema and Falcosidekick mapping', () => {
  const ajv = new Ajv({ useDefaults: true, strict: false });
  ajv.addKeyword({ keyword: 'expect', schemaType: 'string' });
  const validate = ajv.compile(webhookDestination.optionsSchema);

  it('fills defaults and accepts POST/PUT in any case', () => {
    const data: Record<string, unknown> = { address: 'https://hooks.example.com/x' };
    assert.equal(validate(data), true);
    assert.deepEqual(data, { address: 'https://hooks.example.com/x', method: 'POST', custom_headers: {} });
    for (const method of ['POST', 'put', 'Put', 'post'])
      assert.equal(validate({ address: 'http://h/', method }), true, method);
  });

  it('rejects other methods, a missing or non-http address, unknown keys and non-string headers', () => {
    assert.equal(validate({ address: 'http://h/', method: 'GET' }), false);
    assert.equal(validate({ address: 'http://h/', method: 'PATCH' }), false);
    assert.equal(validate({}), false);
    assert.equal(validate({ address: 'ftp://h/' }), false);
    assert.equal(validate({ address: 'http://h/', checkcert: false }), false);
    assert.equal(validate({ address: 'http://h/', custom_headers: { a: 1 } }), false);
  });

  it('maps the webhook section', () => {
    assert.deepEqual(webhookDestination.sidekick, {
      section: 'webhook',
      enabledBy: 'address',
      keys: { address: 'address', method: 'method', customheaders: 'custom_headers' },
      requestKeys: {
        checkcert: 'tls.verify',
        mutualtls: 'mutual_tls',
        maxconcurrentrequests: 'queue.concurrency',
      },
    });
    assert.deepEqual(webhookDestination.secretOptions, ['custom_headers']);
    assert.equal(webhookDestination.batch, undefined);
  });
});
