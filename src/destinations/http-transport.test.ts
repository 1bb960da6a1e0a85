import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dns from 'node:dns';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RequestConfig } from '../config/types.ts';
import { classify, HttpStatusError } from '../delivery/errors.ts';
import { DestinationSettingError } from '../config/errors.ts';
import {
  canonicalHeaderName,
  createHttpTransport,
  RESPONSE_LIMIT,
  type HttpTransport,
} from './http-transport.ts';
import {
  startRecordingServer,
  startTestProxy,
  startTestSocks5,
  type RecordingServer,
} from '../../test/helpers/recording-server.ts';
import { certificateReloadLogged, makePki, replaceFile, type TestPki } from '../../test/helpers/certs.ts';
import { removeAtExit } from '../../test/helpers/config-file.ts';
import { waitUntil } from '../../test/helpers/delivery.ts';
import { warningsLogger } from '../../test/helpers/log-capture.ts';

const execFileAsync = promisify(execFile);

function requestConfig(patch: Partial<RequestConfig> = {}): RequestConfig {
  return {
    timeout: 5000,
    connect_timeout: 2000,
    headers: {},
    tls: { verify: true, ca_file: '', cert_file: '', key_file: '' },
    proxy: '',
    auth: { username: '', password: '', bearer_token: '' },
    gzip: false,
    ...patch,
  };
}

/** Header value as sent, with the name's case as sent. */
function rawHeader(raw: string[], name: string): [string, string] | undefined {
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.toLowerCase() === name.toLowerCase()) return [raw[i]!, raw[i + 1]!];
  return undefined;
}

/**
 * Answers dns.lookup (which net.connect calls through the module) for the names of `answers`, read at
 * each lookup so a test can change them; returns the function that restores the real one.
 */
function resolveTestNames(answers: Record<string, string[]>): () => void {
  const real = dns.lookup;
  const fake = (hostname: string, options: unknown, callback: unknown) => {
    const addresses = answers[hostname];
    if (addresses === undefined) return (real as (...args: unknown[]) => void)(hostname, options, callback);
    const all = addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    const done = callback as (err: null, ...result: unknown[]) => void;
    process.nextTick(() =>
      (options as { all?: boolean }).all ? done(null, all) : done(null, all[0]!.address, all[0]!.family),
    );
  };
  dns.lookup = fake as typeof dns.lookup;
  return () => {
    dns.lookup = real;
  };
}

let sharedPki: TestPki | undefined;
const pkiOnce = (): TestPki => (sharedPki ??= makePki());

const transports: HttpTransport[] = [];
function transport(
  request: RequestConfig,
  baseUrl: string,
  extra: { userAgent?: string; connections?: number } = {},
): HttpTransport {
  const t = createHttpTransport(request, { name: 'test', baseUrl, ...extra });
  transports.push(t);
  return t;
}

after(async () => {
  await Promise.all(transports.map((t) => t.close()));
});

describe('http transport: statuses and errors', () => {
  let server: RecordingServer;
  before(async () => {
    server = await startRecordingServer();
  });
  after(() => server.close());

  it('resolves any 2xx with status, headers and body', async () => {
    const t = transport(requestConfig(), server.url);
    for (const status of [200, 201, 202, 204, 299]) {
      server.respondWith(() => ({
        status,
        headers: { 'x-reply': 'yes' },
        body: status === 204 ? '' : `ok ${status}`,
      }));
      const res = await t.send({ body: '{}' });
      assert.equal(res.status, status);
      assert.equal(res.headers['x-reply'], 'yes');
      assert.equal(res.body, status === 204 ? '' : `ok ${status}`);
    }
  });

  it('sends method, path, content type and default headers', async () => {
    server.reset();
    server.respondWith(() => ({}));
    const t = transport(requestConfig(), `${server.url}base/?k=v`, { userAgent: 'Agent/1' });
    await t.send({ method: 'put', path: '/sub/x?y=1', body: 'hello', contentType: 'text/plain' });
    await t.send({ body: 'plain' });
    const [a, b] = await server.waitFor(2);
    assert.equal(a!.method, 'PUT');
    assert.equal(a!.url, '/base/sub/x?k=v&y=1');
    assert.equal(a!.text, 'hello');
    assert.deepEqual(rawHeader(a!.rawHeaders, 'content-type'), ['Content-Type', 'text/plain']);
    assert.deepEqual(rawHeader(a!.rawHeaders, 'user-agent'), ['User-Agent', 'Agent/1']);
    assert.deepEqual(rawHeader(a!.rawHeaders, 'accept-encoding'), ['Accept-Encoding', 'gzip']);
    assert.equal(a!.headers['content-length'], '5');
    assert.equal(b!.method, 'POST');
    assert.equal(b!.url, '/base/?k=v');
    assert.equal(b!.headers['content-type'], 'application/json; charset=utf-8');
  });

  it('throws HttpStatusError on 4xx/5xx with the body and Retry-After in seconds', async () => {
    const t = transport(requestConfig(), server.url);
    server.respondWith(() => ({ status: 429, headers: { 'retry-after': '7' }, body: 'slow down' }));
    const err = await t.send({ body: '{}' }).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HttpStatusError);
    assert.equal(err.status, 429);
    assert.equal(err.body, 'slow down');
    assert.equal(err.retryAfterMs, 7000);
    assert.equal(classify(err).retryable, true);

    server.respondWith(() => ({ status: 400, body: 'bad' }));
    await assert.rejects(
      t.send({ body: '{}' }),
      (e: unknown) => e instanceof HttpStatusError && e.status === 400 && !classify(e).retryable,
    );
  });

  it('parses Retry-After as an HTTP date', async () => {
    const t = transport(requestConfig(), server.url);
    const when = new Date(Date.now() + 60_000).toUTCString();
    server.respondWith(() => ({ status: 503, headers: { 'retry-after': when }, body: 'down' }));
    const err = (await t.send({ body: '{}' }).catch((e: unknown) => e)) as HttpStatusError;
    assert.ok(err instanceof HttpStatusError);
    assert.equal(err.status, 503);
    assert.ok(err.retryAfterMs! > 55_000 && err.retryAfterMs! <= 60_000, String(err.retryAfterMs));
  });

  it('follows a 307 or 308 with the same method, body and headers, as Go does (an ingress redirecting to https)', async () => {
    const t = transport(
      requestConfig({
        headers: { 'x-custom': 'kept' },
        auth: { username: 'u', password: 'p', bearer_token: '' },
        gzip: true,
      }),
      `${server.url}hook`,
    );
    for (const status of [307, 308]) {
      server.reset();
      server.respondWith((req) =>
        req.url === '/hook'
          ? { status, headers: { location: '/moved?x=1' }, body: 'moved' }
          : { body: 'done' },
      );
      const res = await t.send({ method: 'PUT', body: '{"uuid":"a"}' });
      assert.equal(res.body, 'done');
      const [first, second] = await server.waitFor(2);
      assert.equal(server.requests.length, 2);
      assert.equal(second!.url, '/moved?x=1');
      assert.equal(second!.method, 'PUT');
      assert.equal(second!.text, '{"uuid":"a"}');
      assert.equal(second!.headers['content-encoding'], 'gzip');
      for (const name of ['authorization', 'x-custom', 'content-type', 'user-agent'])
        assert.equal(second!.headers[name], first!.headers[name], name);
    }
    server.respondWith(() => ({}));
  });

  it('drops credentials on a redirect to another host name, for the rest of the chain, as Go does', async () => {
    const other = await startRecordingServer({ host: '127.0.0.2' });
    try {
      const t = transport(
        requestConfig({ headers: { cookie: 'c=1', 'x-custom': 'kept' } }),
        `http://u:p@127.0.0.1:${server.port}/`,
      );
      server.reset();
      server.respondWith((req) =>
        req.url === '/' ? { status: 308, headers: { location: `${other.url}next` } } : { body: 'back' },
      );
      other.respondWith(() => ({ status: 307, headers: { location: `${server.url}again` } }));
      assert.equal((await t.send({ body: 'x' })).body, 'back');
      const [first, back] = await server.waitFor(2);
      const [hop] = await other.waitFor(1);
      assert.equal(first!.headers.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
      for (const req of [hop!, back!]) {
        assert.equal(req.headers.authorization, undefined, req.url);
        assert.equal(req.headers.cookie, undefined, req.url);
        assert.equal(req.headers['x-custom'], 'kept', req.url);
        assert.equal(req.text, 'x');
      }
    } finally {
      await other.close();
      server.respondWith(() => ({}));
    }
  });

  it('does not follow 301, 302 or 303 (a POST repeated as a GET would lose the event), nor a 3xx without Location', async () => {
    const t = transport(requestConfig(), server.url);
    for (const status of [301, 302, 303]) {
      server.reset();
      server.respondWith(() => ({ status, headers: { location: 'https://u:secret@elsewhere.example/x' } }));
      const err = (await t.send({ body: '{}' }).catch((e: unknown) => e)) as HttpStatusError;
      assert.ok(err instanceof HttpStatusError);
      assert.equal(err.status, status);
      assert.match(
        err.message,
        /redirect to https:\/\/\[redacted\]@elsewhere\.example\/x not followed: it would repeat the POST as a GET/,
      );
      assert.doesNotMatch(err.message, /secret/);
      assert.equal(classify(err).retryable, false);
      assert.equal(server.requests.length, 1);
    }
    server.respondWith(() => ({ status: 308, body: 'no location' }));
    await assert.rejects(
      t.send({ body: '{}' }),
      (e: unknown) => e instanceof HttpStatusError && e.status === 308 && e.body === 'no location',
    );
    server.respondWith(() => ({}));
  });

  it('stops after 10 requests of a redirect loop, a permanent failure', async () => {
    const t = transport(requestConfig(), server.url);
    server.reset();
    server.respondWith((_req, i) => ({ status: 308, headers: { location: `/loop${i}` } }));
    const err = (await t.send({ body: '{}' }).catch((e: unknown) => e)) as HttpStatusError;
    assert.ok(err instanceof HttpStatusError);
    assert.equal(err.status, 308);
    assert.match(err.message, /stopped after 10 redirects/);
    assert.equal(classify(err).retryable, false);
    assert.equal(server.requests.length, 10);
    server.respondWith(() => ({ status: 307, headers: { location: 'ftp://files.example/' } }));
    await assert.rejects(t.send({ body: '{}' }), /not followed: not an http\(s\) URL/);
    server.respondWith(() => ({}));
  });

  it('decodes a gzip response body', async () => {
    const { gzipSync } = await import('node:zlib');
    const t = transport(requestConfig(), server.url);
    server.respondWith(() => ({ headers: { 'content-encoding': 'gzip' }, body: gzipSync('{"accepted":1}') }));
    assert.equal((await t.send({ body: '{}' })).body, '{"accepted":1}');
    server.respondWith(() => ({ headers: { 'content-encoding': 'gzip' }, body: gzipSync('') }));
    assert.equal((await t.send({ body: '{}' })).body, '', 'an empty gzip body is empty text');
    server.respondWith(() => ({}));
  });

  it('decodes no more of a gzip body than it keeps: a small body that inflates to gigabytes stays bounded', async () => {
    const { gzipSync } = await import('node:zlib');
    const t = transport(requestConfig(), server.url);
    // 32 MiB of zeros gzip to about 32 KB.
    const bomb = gzipSync(Buffer.alloc(32 * 1024 * 1024));
    server.respondWith(() => ({ headers: { 'content-encoding': 'gzip' }, body: bomb }));
    assert.equal((await t.send({ body: '{}' })).body.length, RESPONSE_LIMIT);
    server.respondWith(() => ({ status: 503, headers: { 'content-encoding': 'gzip' }, body: bomb }));
    await assert.rejects(t.send({ body: '{}' }), (err: unknown) => {
      assert.ok(err instanceof HttpStatusError);
      // What the first 4 KiB of the gzip stream decode to, then cut at 4 KiB.
      assert.equal(err.body, '\0'.repeat(4096));
      return true;
    });
    server.respondWith(() => ({}));
  });

  it('times out a server that accepts and never answers, within the deadline', async () => {
    const t = transport(requestConfig({ timeout: 300 }), server.url);
    server.respondWith(() => ({ hang: true }));
    const started = Date.now();
    const err = (await t.send({ body: '{}' }).catch((e: unknown) => e)) as Error;
    const elapsed = Date.now() - started;
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'TimeoutError');
    assert.match(err.message, /timed out after 300 ms/);
    assert.ok(elapsed >= 280 && elapsed < 1500, `elapsed ${elapsed} ms`);
    assert.equal(classify(err).reason, 'timeout');
    assert.equal(classify(err).retryable, true);
  });

  it('times out a body that stalls after the headers', async () => {
    const stalling = await startRecordingServer();
    stalling.server.removeAllListeners('request');
    stalling.server.on('request', (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    });
    const t = transport(requestConfig({ timeout: 300 }), stalling.url);
    const started = Date.now();
    await assert.rejects(t.send({ body: '{}' }), (e: unknown) => classify(e).reason === 'timeout');
    assert.ok(Date.now() - started < 1500);
    await stalling.close();
  });

  it('bounds connect + TLS handshake by connect_timeout', async () => {
    const { createServer } = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as import('node:net').AddressInfo).port;
    try {
      const t = transport(
        requestConfig({ connect_timeout: 200, timeout: 5000 }),
        `https://127.0.0.1:${port}/`,
      );
      const started = Date.now();
      const err = (await t.send({ body: '{}' }).catch((e: unknown) => e)) as Error & { code?: string };
      assert.equal(err.code, 'UND_ERR_CONNECT_TIMEOUT');
      assert.ok(Date.now() - started < 1500);
      assert.equal(classify(err).reason, 'timeout');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('reports a connection reset as a network error', async () => {
    const t = transport(requestConfig(), server.url);
    server.respondWith(() => ({ reset: true }));
    const err = (await t.send({ body: '{}' }).catch((e: unknown) => e)) as Error & { code?: string };
    assert.ok(err instanceof Error);
    assert.ok(['ECONNRESET', 'UND_ERR_SOCKET'].includes(err.code ?? ''), `code ${err.code}`);
    assert.equal(classify(err).retryable, true);
  });

  /** A server that answers `head` plus the start of a body, then drops the connection. */
  async function withBrokenAnswer(head: string, run: (url: string) => Promise<void>): Promise<void> {
    const broken = createNetServer((socket) => {
      socket.once('data', () => {
        socket.write(head);
        setTimeout(() => socket.destroy(), 20);
      });
    });
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    try {
      await run(`http://127.0.0.1:${(broken.address() as AddressInfo).port}/`);
    } finally {
      await new Promise((resolve) => broken.close(resolve));
    }
  }

  it('classifies an error status whose body breaks off by its status, with the part that came', async () => {
    await withBrokenAnswer(
      'HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\n{"error":"invalid tok',
      async (url) => {
        const err = await transport(requestConfig(), url)
          .send({ body: '{}' })
          .catch((e: unknown) => e);
        assert.ok(err instanceof HttpStatusError, String(err));
        assert.equal(err.status, 401);
        assert.equal(err.body, '{"error":"invalid tok');
        assert.equal(classify(err).retryable, false);
      },
    );
  });

  it('says that a 2xx whose body breaks off was answered, and retries it as the network error', async () => {
    await withBrokenAnswer('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial', async (url) => {
      const err = (await transport(requestConfig(), url)
        .send({ body: '{}' })
        .catch((e: unknown) => e)) as Error & { code?: string };
      assert.match(
        err.message,
        new RegExp(
          `^${new URL(url).host} answered HTTP 200, then the connection broke before the end of its body`,
        ),
      );
      assert.equal(err.code, 'UND_ERR_SOCKET');
      const classification = classify(err);
      assert.equal(classification.retryable, true);
      assert.equal(classification.reason, 'UND_ERR_SOCKET');
    });
  });

  it('names the receiver that closed the connection without answering', async () => {
    await withBrokenAnswer('', async (url) => {
      const err = (await transport(requestConfig(), url)
        .send({ body: '{}' })
        .catch((e: unknown) => e)) as Error & { code?: string };
      assert.match(err.message, new RegExp(`^no answer from ${new URL(url).host}: the connection broke`));
      assert.equal(classify(err).reason, 'UND_ERR_SOCKET');
    });
  });

  it('reports a refused connection with its code', async () => {
    const closed = await startRecordingServer();
    const url = closed.url;
    await closed.close();
    const t = transport(requestConfig(), url);
    await assert.rejects(
      t.send({ body: '{}' }),
      (e: unknown) => (e as { code?: string }).code === 'ECONNREFUSED',
    );
  });

  it('names the host and every address tried when a dual-stack name refuses on all of them', async () => {
    const closed = await startRecordingServer();
    const port = closed.port;
    await closed.close();
    // Both families, as `localhost` or a dual-stack Service: Node tries each (happy eyeballs) and
    // throws an AggregateError whose own message is empty.
    const restore = resolveTestNames({ 'dual-stack.test': ['::1', '127.0.0.1'] });
    try {
      const err = (await transport(requestConfig(), `http://dual-stack.test:${port}/`)
        .send({ body: '{}' })
        .catch((e: unknown) => e)) as Error;
      assert.match(
        err.message,
        new RegExp(`^cannot connect to dual-stack\\.test:${port}: .*127\\.0\\.0\\.1:${port}`),
      );
      const classification = classify(err);
      assert.equal(classification.reason, 'ECONNREFUSED');
      assert.equal(classification.message, err.message);
    } finally {
      restore();
    }
  });

  it('moves new sends to the new address when the name of a destination resolves to another one', async () => {
    // The old address stays up (a stale server after a failover): only re-resolving the name moves
    // the kept-alive connection off it.
    const before = await startRecordingServer();
    const after = await startRecordingServer({ host: '127.0.0.2', port: before.port });
    const addresses = { 'moving.test': ['127.0.0.1'] };
    const restore = resolveTestNames(addresses);
    try {
      const { logger, warnings: lines } = warningsLogger('debug');
      const changes = () =>
        lines
          .filter((l) => /address of the destination changed/.test(String(l.msg)))
          .map((l) => [l.level === 30 ? 'info' : l.level === 20 ? 'debug' : l.level, l.before, l.after]);
      const t = createHttpTransport(requestConfig(), {
        name: 'moving',
        baseUrl: `http://moving.test:${before.port}/`,
        logger,
        addressCheckInterval: 20,
      });
      transports.push(t);
      for (let i = 0; i < 3; i++) await t.send({ body: '{}' });
      assert.equal(before.connections, 1);

      addresses['moving.test'] = ['127.0.0.2'];
      await waitUntil(
        () => t.send({ body: '{}' }).then(() => after.requests.length > 0),
        3000,
        () => `sends still reach the old address (${before.requests.length} there)`,
      );
      assert.deepEqual(changes(), [['info', '127.0.0.1', '127.0.0.2']]);

      // An answer that keeps one of its addresses (a rotating or growing set) moves the pool too, but
      // is not worth an info line at every check.
      addresses['moving.test'] = ['127.0.0.1', '127.0.0.2'];
      await waitUntil(
        () => changes().length === 2,
        3000,
        () => 'the change of the answer was not seen',
      );
      assert.deepEqual(changes()[1], ['debug', '127.0.0.2', '127.0.0.1, 127.0.0.2']);
    } finally {
      restore();
      await Promise.all([before.close(), after.close()]);
    }
  });

  it('reuses one keep-alive connection for sequential sends', async () => {
    const fresh = await startRecordingServer();
    const t = transport(requestConfig(), fresh.url);
    for (let i = 0; i < 5; i++) await t.send({ body: `{"n":${i}}` });
    assert.equal(fresh.requests.length, 5);
    assert.equal(fresh.connections, 1);
    assert.deepEqual(
      fresh.requests.map((r) => r.connection),
      [1, 1, 1, 1, 1],
    );
    await t.close();
    await fresh.close();
  });

  it('keeps at most 1 MiB of a success body and 4 KiB of an error body, and stays usable', async () => {
    const t = transport(requestConfig(), server.url);
    const big = 'x'.repeat(3 * 1024 * 1024);
    server.respondWith(() => ({ status: 200, body: big }));
    const ok = await t.send({ body: '{}' });
    assert.equal(ok.body.length, RESPONSE_LIMIT);
    server.respondWith(() => ({ status: 500, body: big }));
    await assert.rejects(t.send({ body: '{}' }), (err: unknown) => {
      assert.ok(err instanceof HttpStatusError);
      assert.equal(err.status, 500);
      assert.equal(err.body.length, 4096);
      return true;
    });
    server.respondWith(() => ({ status: 200, body: 'small' }));
    assert.equal((await t.send({ body: '{}' })).body, 'small');
  });

  it('refuses to send after close', async () => {
    const t = transport(requestConfig(), server.url);
    await t.close();
    await assert.rejects(t.send({ body: '{}' }), /closed/);
  });
});

describe('http transport: auth, headers, gzip', () => {
  let server: RecordingServer;
  before(async () => {
    server = await startRecordingServer();
  });
  after(() => server.close());

  it('sends basic auth exactly', async () => {
    server.reset();
    const t = transport(
      requestConfig({ auth: { username: 'falco', password: 'p@ss:word', bearer_token: '' } }),
      server.url,
    );
    await t.send({ body: '{}' });
    assert.deepEqual(rawHeader(server.requests[0]!.rawHeaders, 'authorization'), [
      'Authorization',
      `Basic ${Buffer.from('falco:p@ss:word').toString('base64')}`,
    ]);
  });

  it('sends a bearer token exactly', async () => {
    server.reset();
    const t = transport(
      requestConfig({ auth: { username: '', password: '', bearer_token: 's3cret' } }),
      server.url,
    );
    await t.send({ body: '{}' });
    assert.equal(server.requests[0]!.headers.authorization, 'Bearer s3cret');
  });

  it('sends credentials in the URL as basic auth, not in the URL', async () => {
    server.reset();
    const t = transport(requestConfig(), server.url.replace('http://', 'http://us%3Aer:p%40ss@'));
    await t.send({ body: '{}' });
    assert.equal(
      server.requests[0]!.headers.authorization,
      `Basic ${Buffer.from('us:er:p@ss').toString('base64')}`,
    );
    assert.equal(server.requests[0]!.url, '/');
    assert.equal(t.baseUrl.username, '');
  });

  it('refuses both basic and bearer auth', () => {
    assert.throws(
      () =>
        createHttpTransport(requestConfig({ auth: { username: 'u', password: 'p', bearer_token: 't' } }), {
          name: 'x',
          baseUrl: server.url,
        }),
      /not both/,
    );
  });

  it('applies request headers, then per-call headers, in Go canonical form', async () => {
    server.reset();
    const t = transport(
      requestConfig({ headers: { 'x-team': 'sec', 'X-Override': 'config', 'user-agent': 'Custom/2' } }),
      server.url,
    );
    await t.send({ body: '{}', headers: { 'x-override': 'call', 'x-api-key': 'k' } });
    const r = server.requests[0]!;
    assert.deepEqual(rawHeader(r.rawHeaders, 'x-team'), ['X-Team', 'sec']);
    assert.deepEqual(rawHeader(r.rawHeaders, 'x-override'), ['X-Override', 'call']);
    assert.deepEqual(rawHeader(r.rawHeaders, 'x-api-key'), ['X-Api-Key', 'k']);
    assert.equal(r.headers['user-agent'], 'Custom/2');
    assert.equal(r.rawHeaders.filter((h) => h.toLowerCase() === 'x-override').length, 1);
  });

  it('ignores Host and Content-Length headers, as Go does; refuses at creation those undici cannot send', async () => {
    server.reset();
    const t = transport(
      requestConfig({ headers: { Host: 'evil.example', 'Content-Length': '1' } }),
      server.url,
    );
    await t.send({ body: '{"a":1}', headers: { host: 'other.example' } });
    assert.equal(server.requests[0]!.headers.host, `127.0.0.1:${server.port}`);
    assert.equal(server.requests[0]!.headers['content-length'], '7');
    for (const name of ['Transfer-Encoding', 'keep-alive', 'Upgrade', 'Expect']) {
      assert.throws(
        () => transport(requestConfig({ headers: { [name]: 'x' } }), server.url),
        (e: unknown) =>
          e instanceof DestinationSettingError &&
          e.key === `request.headers.${name}` &&
          /cannot be configured: the HTTP client sets it itself/.test(e.detail),
      );
    }
  });

  it('canonicalizes header names as Go does', () => {
    assert.equal(canonicalHeaderName('x-api-key'), 'X-Api-Key');
    assert.equal(canonicalHeaderName('AUTHORIZATION'), 'Authorization');
    assert.equal(canonicalHeaderName('dd-api-key'), 'Dd-Api-Key');
    assert.equal(canonicalHeaderName('bad header'), 'bad header');
  });

  it('gzips the body when request.gzip is set', async () => {
    server.reset();
    const body = JSON.stringify({ text: 'x'.repeat(5000), n: 1767258001000000123n.toString() });
    const t = transport(requestConfig({ gzip: true }), server.url);
    await t.send({ body });
    const r = server.requests[0]!;
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.ok(r.body.length < body.length);
    assert.equal(r.body[0], 0x1f);
    assert.equal(r.text, body);
    assert.equal(r.headers['content-length'], String(r.body.length));
  });
});

describe('http transport: TLS', () => {
  let pki: TestPki;
  let server: RecordingServer;
  let mtls: RecordingServer;
  before(async () => {
    pki = pkiOnce();
    server = await startRecordingServer({
      tls: { cert: pki.read(pki.serverCert), key: pki.read(pki.serverKey) },
    });
    mtls = await startRecordingServer({
      tls: {
        cert: pki.read(pki.serverCert),
        key: pki.read(pki.serverKey),
        ca: pki.read(pki.caCert),
        requestCert: true,
      },
    });
  });
  after(async () => {
    await server.close();
    await mtls.close();
  });

  it('refuses a server certificate from an unknown CA when verifying', async () => {
    const t = transport(requestConfig(), server.url);
    await assert.rejects(t.send({ body: '{}' }), (e: unknown) =>
      /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/.test(String((e as { code?: string }).code)),
    );
    assert.equal(server.requests.length, 0);
  });

  it('names the receiver and the remedy when its certificate is not trusted, keeping the code', async () => {
    const t = transport(requestConfig(), server.url);
    const err = (await t.send({ body: '{}' }).catch((e: unknown) => e)) as Error & { code?: string };
    const host = new URL(server.url).host;
    assert.ok(
      err.message.startsWith(
        `TLS: the certificate of ${host} is not trusted: name its CA in request.tls.ca_file`,
      ),
      err.message,
    );
    assert.equal(classify(err).reason, err.code);
    assert.equal(classify(err).retryable, true);
  });

  it('accepts it with verification off', async () => {
    const t = transport(
      requestConfig({ tls: { verify: false, ca_file: '', cert_file: '', key_file: '' } }),
      server.url,
    );
    assert.equal((await t.send({ body: '{}' })).status, 200);
  });

  it('accepts it when ca_file names the CA', async () => {
    const t = transport(
      requestConfig({ tls: { verify: true, ca_file: pki.caCert, cert_file: '', key_file: '' } }),
      server.url,
    );
    assert.equal((await t.send({ body: '{}' })).status, 200);
  });

  it('trusts every CA of a ca_file list, and only those', async () => {
    const otherCa = join(pki.dir, 'rogue-ca.crt');
    const both = transport(
      requestConfig({ tls: { verify: true, ca_file: [otherCa, pki.caCert], cert_file: '', key_file: '' } }),
      server.url,
    );
    assert.equal((await both.send({ body: '{}' })).status, 200);
    const other = transport(
      requestConfig({ tls: { verify: true, ca_file: [otherCa], cert_file: '', key_file: '' } }),
      server.url,
    );
    await assert.rejects(other.send({ body: '{}' }), (e: unknown) =>
      /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/.test(String((e as { code?: string }).code)),
    );
  });

  it('keeps trusting NODE_EXTRA_CA_CERTS when ca_file adds another CA', async () => {
    // Node reads NODE_EXTRA_CA_CERTS at start, so the transport runs in a child process.
    const script = `
      import { createHttpTransport } from ${JSON.stringify(new URL('./http-transport.ts', import.meta.url).href)};
      const request = ${JSON.stringify(
        requestConfig({
          tls: { verify: true, ca_file: join(pki.dir, 'rogue-ca.crt'), cert_file: '', key_file: '' },
        }),
      )};
      const t = createHttpTransport(request, { name: 'extra', baseUrl: process.argv[1] });
      try {
        console.log((await t.send({ body: '{}' })).status);
      } catch (err) {
        console.log(err.code ?? err.message);
      } finally {
        await t.close();
      }`;
    const run = (extra: string | undefined) =>
      execFileAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, server.url], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: extra },
      });
    assert.equal((await run(pki.caCert)).stdout.trim(), '200');
    assert.match((await run(undefined)).stdout, /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
  });

  it('presents a client certificate for mutual TLS', async () => {
    const t = transport(
      requestConfig({
        tls: { verify: true, ca_file: pki.caCert, cert_file: pki.clientCert, key_file: pki.clientKey },
      }),
      mtls.url,
    );
    assert.equal((await t.send({ body: '{}' })).status, 200);
    assert.deepEqual(mtls.requests[0]!.tls, { authorized: true, clientCertCN: 'client' });
  });

  it('presents a renewed client certificate on new connections, without a restart; keeps the last good pair when the new one does not match', async () => {
    const dir = removeAtExit(mkdtempSync(join(tmpdir(), 'eyrie-client-renew-')));
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    replaceFile(cert, pki.rogueCert); // from another CA: refused by the server
    replaceFile(key, pki.rogueKey);
    const { logger, warnings: lines } = warningsLogger('info');
    const t = createHttpTransport(
      requestConfig({ tls: { verify: true, ca_file: pki.caCert, cert_file: cert, key_file: key } }),
      { name: 'renewing', baseUrl: mtls.url, logger, certificateCheckInterval: 20 },
    );
    transports.push(t);
    await assert.rejects(t.send({ body: '{}' }));

    replaceFile(cert, pki.clientCert);
    replaceFile(key, pki.clientKey);
    await waitUntil(
      () =>
        t.send({ body: '{}' }).then(
          (r) => r.status === 200,
          () => false,
        ),
      3000,
      () => 'renewed client certificate presented',
    );
    assert.deepEqual(mtls.requests.at(-1)!.tls, { authorized: true, clientCertCN: 'client' });
    await certificateReloadLogged(lines, 'used');

    // Half a renewal (a certificate without its key): reported, the last good pair stays in use.
    replaceFile(cert, pki.rogueCert);
    await certificateReloadLogged(lines, 'unusable');
    assert.equal((await t.send({ body: '{}' })).status, 200);
    assert.deepEqual(mtls.requests.at(-1)!.tls, { authorized: true, clientCertCN: 'client' });
  });

  it('fails against a server requiring a client certificate without one', async () => {
    const before = mtls.requests.length;
    const t = transport(
      requestConfig({ tls: { verify: true, ca_file: pki.caCert, cert_file: '', key_file: '' } }),
      mtls.url,
    );
    await assert.rejects(t.send({ body: '{}' }));
    assert.equal(mtls.requests.length, before);
  });

  it('fails with a client certificate from another CA', async () => {
    const before = mtls.requests.length;
    const t = transport(
      requestConfig({
        tls: { verify: true, ca_file: pki.caCert, cert_file: pki.rogueCert, key_file: pki.rogueKey },
      }),
      mtls.url,
    );
    await assert.rejects(t.send({ body: '{}' }));
    assert.equal(mtls.requests.length, before);
  });

  it('names an unreadable file at creation', () => {
    const missing = join(pki.dir, 'missing.crt');
    assert.throws(
      () =>
        createHttpTransport(
          requestConfig({ tls: { verify: true, ca_file: missing, cert_file: '', key_file: '' } }),
          { name: 'hook', baseUrl: server.url },
        ),
      (e: unknown) =>
        e instanceof Error &&
        e.message.includes(missing) &&
        e.message.includes('ca_file') &&
        e.message.includes('"hook"'),
    );
    assert.throws(
      () =>
        createHttpTransport(
          requestConfig({ tls: { verify: true, ca_file: '', cert_file: pki.clientCert, key_file: missing } }),
          {
            name: 'hook',
            baseUrl: server.url,
          },
        ),
      (e: unknown) => e instanceof Error && e.message.includes(missing) && e.message.includes('key_file'),
    );
    assert.throws(
      () =>
        createHttpTransport(
          requestConfig({ tls: { verify: true, ca_file: '', cert_file: pki.clientCert, key_file: '' } }),
          { name: 'hook', baseUrl: server.url },
        ),
      /must be set together/,
    );
  });

  it('refuses a cert/key pair that does not match', () => {
    assert.throws(
      () =>
        createHttpTransport(
          requestConfig({
            tls: { verify: true, ca_file: '', cert_file: pki.clientCert, key_file: pki.rogueKey },
          }),
          {
            name: 'hook',
            baseUrl: server.url,
          },
        ),
      /cannot be used/,
    );
  });

  it('refuses a CA file without a certificate', () => {
    const junk = join(pki.dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate');
    assert.throws(
      () =>
        createHttpTransport(
          requestConfig({ tls: { verify: true, ca_file: junk, cert_file: '', key_file: '' } }),
          { name: 'hook', baseUrl: server.url },
        ),
      /no usable PEM certificate/,
    );
  });
});

/** A transport to `server`/hook through `proxyUrl`, presenting the test client certificate. */
function viaProxyWithClientCert(
  proxyUrl: string,
  server: RecordingServer,
  tls: { verify: boolean; ca_file: string },
): HttpTransport {
  const pki = pkiOnce();
  return transport(
    requestConfig({ proxy: proxyUrl, tls: { ...tls, cert_file: pki.clientCert, key_file: pki.clientKey } }),
    `${server.url}hook`,
  );
}

describe('http transport: proxy', () => {
  it('sends through request.proxy (absolute form for http targets)', async () => {
    const server = await startRecordingServer();
    const proxy = await startTestProxy();
    try {
      const t = transport(requestConfig({ proxy: proxy.url }), `${server.url}hook?x=1`);
      const res = await t.send({ body: '{"a":1}', headers: { 'x-custom': 'v' } });
      assert.equal(res.status, 200);
      assert.equal(proxy.requests.length, 1);
      assert.equal(proxy.requests[0]!.url, `${server.url}hook?x=1`);
      assert.equal(proxy.requests[0]!.method, 'POST');
      assert.equal(server.requests.length, 1);
      assert.equal(server.requests[0]!.text, '{"a":1}');
      assert.equal(server.requests[0]!.headers['x-custom'], 'v');
    } finally {
      await proxy.close();
      await server.close();
    }
  });

  it('tunnels https targets through the proxy with CONNECT', async () => {
    const pki = pkiOnce();
    const server = await startRecordingServer({
      tls: { cert: pki.read(pki.serverCert), key: pki.read(pki.serverKey) },
    });
    const proxy = await startTestProxy();
    try {
      const t = transport(
        requestConfig({
          proxy: proxy.url,
          tls: { verify: true, ca_file: pki.caCert, cert_file: '', key_file: '' },
        }),
        server.url,
      );
      assert.equal((await t.send({ body: '{}' })).status, 200);
      assert.deepEqual(proxy.tunnels, [`127.0.0.1:${server.port}`]);
    } finally {
      await proxy.close();
      await server.close();
    }
  });

  it("an https proxy gets the destination's TLS settings, as Go's transport gives them (CA, client cert, checkcert)", async () => {
    const pki = pkiOnce();
    const server = await startRecordingServer();
    // The proxy's certificate is signed by the test CA and it demands a client certificate.
    const proxy = await startTestProxy({
      tls: {
        cert: pki.read(pki.serverCert),
        key: pki.read(pki.serverKey),
        ca: pki.read(pki.caCert),
        requestCert: true,
      },
    });
    try {
      const mutual = viaProxyWithClientCert(proxy.url, server, { verify: true, ca_file: pki.caCert });
      assert.equal((await mutual.send({ body: '{}' })).status, 200);
      // A plain-http target goes to the https proxy in absolute form, as in Go (no CONNECT tunnel).
      assert.deepEqual(
        proxy.requests.map((r) => [r.url, r.headers.host]),
        [[`${server.url}hook`, `127.0.0.1:${server.port}`]],
      );
      // Without the CA (and without checkcert off) the proxy's certificate is refused.
      const untrusted = viaProxyWithClientCert(proxy.url, server, { verify: true, ca_file: '' });
      await assert.rejects(untrusted.send({ body: '{}' }));
      const unchecked = viaProxyWithClientCert(proxy.url, server, { verify: false, ca_file: '' });
      assert.equal((await unchecked.send({ body: '{}' })).status, 200);
      assert.equal(proxy.requests.length, 2);
      assert.deepEqual(proxy.tunnels, []);
      assert.equal(server.requests.length, 2);

      // The proxy's certificate is checked against the proxy's name, not the target's, and the
      // proxy's credentials go to the proxy. A target name that does not resolve: the proxy answers 502.
      const withCredentials = transport(
        requestConfig({
          proxy: proxy.url.replace('https://', 'https://ops:p%40ss@'),
          tls: { verify: true, ca_file: pki.caCert, cert_file: pki.clientCert, key_file: pki.clientKey },
        }),
        'http://eyrie-proxy-test.invalid/hook',
      );
      await assert.rejects(
        withCredentials.send({ body: '{}' }),
        (e: unknown) => e instanceof HttpStatusError && e.status === 502,
      );
      const last = proxy.requests.at(-1)!;
      assert.equal(last.url, 'http://eyrie-proxy-test.invalid/hook');
      assert.equal(last.headers.host, 'eyrie-proxy-test.invalid');
      assert.equal(
        last.headers['proxy-authorization'],
        `Basic ${Buffer.from('ops:p@ss').toString('base64')}`,
      );
    } finally {
      await proxy.close();
      await server.close();
    }
  });

  it('sends through a socks5:// proxy (plain TCP to the proxy, whatever the destination TLS settings)', async () => {
    const pki = pkiOnce();
    const server = await startRecordingServer();
    const socks = await startTestSocks5();
    try {
      const t = viaProxyWithClientCert(socks.url, server, { verify: true, ca_file: pki.caCert });
      assert.equal((await t.send({ body: '{"a":1}' })).status, 200);
      assert.deepEqual(socks.connects, [`127.0.0.1:${server.port}`]);
      assert.equal(server.requests[0]!.text, '{"a":1}');
    } finally {
      await socks.close();
      await server.close();
    }
  });

  it('sends a proxy user without a password as basic auth, in a tunnel too; a refusal is a permanent 407', async () => {
    const pki = pkiOnce();
    const plain = await startRecordingServer();
    const secure = await startRecordingServer({
      tls: { cert: pki.read(pki.serverCert), key: pki.read(pki.serverKey) },
    });
    const proxy = await startTestProxy({
      authorization: `Basic ${Buffer.from('tokenuser:').toString('base64')}`,
    });
    const tls = { verify: true, ca_file: pki.caCert, cert_file: '', key_file: '' };
    try {
      for (const target of [plain.url, secure.url]) {
        const good = transport(
          requestConfig({ proxy: proxy.url.replace('//', '//tokenuser@'), tls }),
          target,
        );
        assert.equal((await good.send({ body: '{}' })).status, 200, target);
        const bad = transport(requestConfig({ proxy: proxy.url.replace('//', '//intruder@'), tls }), target);
        await assert.rejects(bad.send({ body: '{}' }), (e: unknown) => {
          assert.ok(e instanceof HttpStatusError, `${target}: ${String(e)}`);
          assert.equal(e.status, 407);
          assert.deepEqual([classify(e).retryable, classify(e).reason], [false, '407']);
          return true;
        });
      }
      assert.equal(plain.requests.length, 1);
      assert.equal(secure.requests.length, 1);
      assert.deepEqual(proxy.tunnels, [`127.0.0.1:${secure.port}`, `127.0.0.1:${secure.port}`]);
    } finally {
      await proxy.close();
      await plain.close();
      await secure.close();
    }
  });

  it('names no credentials in the error for an address or proxy it cannot use', () => {
    const bad =
      (baseUrl: string, proxy = '') =>
      () =>
        createHttpTransport(requestConfig({ proxy }), { name: 'p', baseUrl });
    assert.throws(bad('http://alice:S3cretPassw0rd@hooks.example.com:99999/falco'), (e: Error) => {
      assert.match(e.message, /"http:\/\/\[redacted\]@hooks.example.com:99999\/falco" is not a valid URL/);
      return !e.message.includes('S3cret');
    });
    assert.throws(bad('http://127.0.0.1:1/', 'http://bob:Pr0xyPass@proxy.example.com:99999'), (e: Error) => {
      assert.match(e.message, /request.proxy: "http:\/\/\[redacted\]@proxy.example.com:99999" is not a URL/);
      return !e.message.includes('Pr0xy');
    });
  });

  it('refuses a proxy that is not a URL', () => {
    assert.throws(
      () =>
        createHttpTransport(requestConfig({ proxy: 'not a url' }), {
          name: 'p',
          baseUrl: 'http://127.0.0.1:1/',
        }),
      /request.proxy/,
    );
  });

  it('honours HTTP_PROXY from the environment, except for loopback targets', async () => {
    const server = await startRecordingServer();
    const proxy = await startTestProxy();
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY };
    process.env.HTTP_PROXY = proxy.url;
    delete process.env.NO_PROXY;
    try {
      const direct = transport(requestConfig(), server.url);
      await direct.send({ body: '{}' });
      assert.equal(server.requests.length, 1);
      assert.equal(proxy.requests.length, 0, 'loopback targets bypass an environment proxy');

      // A name that does not resolve: only the proxy can have seen the request (it answers 502).
      const viaProxy = transport(requestConfig(), 'http://eyrie-proxy-test.invalid/hook');
      await assert.rejects(
        viaProxy.send({ body: '{}' }),
        (e: unknown) => e instanceof HttpStatusError && e.status === 502,
      );
      assert.equal(proxy.requests.length, 1);
      assert.equal(proxy.requests[0]!.url, 'http://eyrie-proxy-test.invalid/hook');
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) Reflect.deleteProperty(process.env, k);
        else process.env[k] = v;
      }
      await proxy.close();
      await server.close();
    }
  });

  it('follows Go NO_PROXY rules: CIDR entries and all of 127/8 go direct, other hosts via the proxy', async (t) => {
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a?.family === 'IPv4' && !a.internal)?.address;
    if (external === undefined || process.platform !== 'linux') {
      t.skip('needs a non-loopback IPv4 address, and 127.0.0.2 on lo (Linux)');
      return;
    }
    const direct: string[] = [];
    const listen = (host: string) =>
      new Promise<Server>((resolve, reject) => {
        const s = createServer((req, res) => {
          direct.push(`${host}${req.url}`);
          res.end('direct');
        });
        s.once('error', reject);
        s.listen(0, host, () => resolve(s));
      });
    const servers = [await listen(external), await listen('127.0.0.2')];
    const [externalUrl, loopbackUrl] = servers.map((s, i) => {
      const { port } = s.address() as AddressInfo;
      return `http://${i === 0 ? external : '127.0.0.2'}:${port}/hook`;
    }) as [string, string];
    const proxy = await startTestProxy();
    const names = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy'];
    const saved = names.map((k) => [k, process.env[k]] as const);
    for (const k of names) Reflect.deleteProperty(process.env, k);
    try {
      // The uppercase variables win, as in Go (undici would take the lowercase ones).
      process.env.HTTP_PROXY = proxy.url;
      process.env.http_proxy = 'http://127.0.0.1:1';
      process.env.NO_PROXY = `example.com, ${external.split('.').slice(0, 3).join('.')}.0/24`;
      process.env.no_proxy = '*';
      assert.equal((await transport(requestConfig(), externalUrl).send({ body: '{}' })).body, 'direct');
      assert.equal((await transport(requestConfig(), loopbackUrl).send({ body: '{}' })).body, 'direct');
      await assert.rejects(
        transport(requestConfig(), 'http://eyrie-proxy-test.invalid/hook').send({ body: '{}' }),
        (e: unknown) => e instanceof HttpStatusError && e.status === 502,
      );
      assert.deepEqual(
        proxy.requests.map((r) => r.url),
        ['http://eyrie-proxy-test.invalid/hook'],
      );
      assert.equal(direct.length, 2);

      // Without the CIDR entry the same address goes through the proxy.
      process.env.NO_PROXY = 'example.com';
      await transport(requestConfig(), externalUrl).send({ body: '{}' });
      assert.equal(proxy.requests.at(-1)?.url, externalUrl);
      assert.equal(direct.length, 3);
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) Reflect.deleteProperty(process.env, k);
        else process.env[k] = v;
      }
      await proxy.close();
      for (const s of servers) {
        s.closeAllConnections();
        s.close();
      }
    }
  });
});
