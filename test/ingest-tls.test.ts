import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startEyrie, type RunningEyrie } from '../src/app.ts';
import { certificateReloadLogged, makePki, replaceFile, type TestPki } from './helpers/certs.ts';
import { testConfig, silentLogger } from './helpers/ingest.ts';
import { warningsLogger } from './helpers/log-capture.ts';
import { waitUntil } from './helpers/delivery.ts';
import { removeAtExit } from './helpers/config-file.ts';

const event =
  '{"output":"x","priority":"Warning","rule":"R","time":"2026-01-01T00:00:00Z","output_fields":{"a":1}}';

async function status(url: string, agent: Agent, method: 'GET' | 'POST' = 'POST'): Promise<number> {
  const res = await request(url, {
    method,
    dispatcher: agent,
    ...(method === 'POST' ? { body: event, headers: { 'content-type': 'application/json' } } : {}),
  });
  await res.body.text();
  return res.statusCode;
}

describe('ingest over TLS (Falcosidekick tlsserver)', () => {
  let pki: TestPki;
  let eyrie: RunningEyrie;
  before(async () => {
    pki = makePki();
    eyrie = await startEyrie(
      testConfig((c) => {
        c.listen.tls = {
          enabled: true,
          cert_file: pki.serverCert,
          key_file: pki.serverKey,
          client_ca_file: pki.caCert,
          require_client_cert: false,
          plain_port: 0,
          plain_paths: ['/ping', '/healthz'],
        };
      }),
      silentLogger,
    );
  });
  after(() => eyrie.close());

  it('serves ingest over HTTPS and moves plain_paths to the plain-HTTP port', async () => {
    assert.match(eyrie.addresses.ingest!, /^https:/);
    assert.match(eyrie.addresses.plain!, /^http:/);
    const trusting = new Agent({ connect: { ca: pki.read(pki.caCert) } });
    const plain = new Agent();
    try {
      assert.equal(await status(eyrie.addresses.ingest! + '/', trusting), 200);
      assert.equal(await status(eyrie.addresses.ingest! + '/ping', trusting, 'GET'), 404);
      assert.equal(await status(eyrie.addresses.plain! + '/ping', plain, 'GET'), 200);
      assert.equal(await status(eyrie.addresses.plain! + '/healthz', plain, 'GET'), 200);
      assert.equal(await status(eyrie.addresses.plain! + '/', plain), 404);
    } finally {
      await trusting.close();
      await plain.close();
    }
  });

  it('refuses clients that do not trust the certificate (handshake error, no HTTP)', async () => {
    const strict = new Agent();
    try {
      await assert.rejects(status(eyrie.addresses.ingest! + '/', strict), /self-signed|certificate/i);
    } finally {
      await strict.close();
    }
  });
});

describe('ingest with mutual TLS', () => {
  let pki: TestPki;
  let eyrie: RunningEyrie;
  before(async () => {
    pki = makePki();
    eyrie = await startEyrie(
      testConfig((c) => {
        c.listen.tls = {
          enabled: true,
          cert_file: pki.serverCert,
          key_file: pki.serverKey,
          client_ca_file: pki.caCert,
          require_client_cert: true,
          plain_port: 0,
          plain_paths: [],
        };
      }),
      silentLogger,
    );
  });
  after(() => eyrie.close());

  it('answers 401 without a client certificate, 403 for one from another CA, 200 for a valid one', async () => {
    const ca = pki.read(pki.caCert);
    const none = new Agent({ connect: { ca } });
    const rogue = new Agent({ connect: { ca, cert: pki.read(pki.rogueCert), key: pki.read(pki.rogueKey) } });
    const valid = new Agent({
      connect: { ca, cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) },
    });
    try {
      assert.equal(await status(eyrie.addresses.ingest! + '/', none), 401);
      assert.equal(await status(eyrie.addresses.ingest! + '/', rogue), 403);
      assert.equal(await status(eyrie.addresses.ingest! + '/', valid), 200);
      // Probes stay reachable without a certificate.
      assert.equal(await status(eyrie.addresses.ingest! + '/healthz', none, 'GET'), 200);
    } finally {
      await Promise.all([none.close(), rogue.close(), valid.close()]);
    }
  });
});

describe('ingest TLS certificate renewal', () => {
  const first = makePki();
  const renewed = makePki();
  const dir = removeAtExit(mkdtempSync(join(tmpdir(), 'eyrie-renew-')));
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  /** The status of a POST on a new connection trusting `pki`'s CA; the error's text when refused. */
  const answer = async (eyrie: RunningEyrie, pki: TestPki): Promise<number | string> => {
    const agent = new Agent({ connect: { ca: pki.read(pki.caCert) } });
    try {
      return await status(eyrie.addresses.ingest! + '/', agent);
    } catch (err) {
      return (err as Error).message;
    } finally {
      await agent.close();
    }
  };

  it('serves a renewed certificate to new connections without a restart, and keeps the current one when the new pair does not match', async (t) => {
    replaceFile(cert, first.serverCert);
    replaceFile(key, first.serverKey);
    const { logger, warnings: lines } = warningsLogger('info');
    const eyrie = await startEyrie(
      testConfig((c) => {
        c.listen.tls = {
          enabled: true,
          cert_file: cert,
          key_file: key,
          client_ca_file: first.caCert,
          require_client_cert: false,
          plain_port: 0,
          plain_paths: [],
        };
      }),
      logger,
      { certificateCheckInterval: 20 },
    );
    t.after(() => eyrie.close());
    assert.equal(await answer(eyrie, first), 200);
    assert.match(String(await answer(eyrie, renewed)), /certificate/i);

    replaceFile(cert, renewed.serverCert);
    replaceFile(key, renewed.serverKey);
    await waitUntil(
      async () => (await answer(eyrie, renewed)) === 200,
      3000,
      () => 'renewed certificate served',
    );
    assert.match(String(await answer(eyrie, first)), /certificate/i);
    await certificateReloadLogged(lines, 'used');

    // Half a renewal (the certificate without its key): refused, the listener keeps serving the last good pair.
    replaceFile(cert, first.serverCert);
    const warning = await certificateReloadLogged(lines, 'unusable');
    assert.match(String(warning.error), /key values mismatch/);
    assert.equal(await answer(eyrie, renewed), 200);
    // Its key arrives: the pair is read again and served.
    replaceFile(key, first.serverKey);
    await waitUntil(
      async () => (await answer(eyrie, first)) === 200,
      3000,
      () => 'completed pair served',
    );
  });
});
