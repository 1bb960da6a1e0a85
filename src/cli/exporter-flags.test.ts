import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../config/load.ts';
import { applyExporterFlags, parseListenAddress, type ExporterFlags } from './exporter-flags.ts';
import { makePki } from '../../test/helpers/certs.ts';

/** falco-exporter's defaults (cmd/falco-exporter), as commander gives them to the action. */
const DEFAULTS: ExporterFlags = {
  clientSocket: 'unix:///run/falco/falco.sock',
  clientPort: '5060',
  clientCa: '/etc/falco/certs/ca.crt',
  clientCert: '/etc/falco/certs/client.crt',
  clientKey: '/etc/falco/certs/client.key',
  listenAddress: ':9376',
  probesListenAddress: ':19376',
  timeout: '2m',
  serverCa: '',
  serverCert: '',
  serverKey: '',
};

const configWith = (flags: Partial<ExporterFlags>) => {
  const { config } = loadConfig({ env: {} });
  applyExporterFlags(config, { ...DEFAULTS, ...flags });
  return config;
};

describe('falco-exporter flags', () => {
  it('parses Go listen addresses', () => {
    assert.deepEqual(parseListenAddress(':9376', 'f'), { address: '', port: 9376 });
    assert.deepEqual(parseListenAddress('0.0.0.0:9376', 'f'), { address: '0.0.0.0', port: 9376 });
    assert.deepEqual(parseListenAddress('[::1]:19376', 'f'), { address: '::1', port: 19376 });
    assert.throws(
      () => parseListenAddress('9376', '--listen-address'),
      /--listen-address "9376": expected host:port/,
    );
    assert.throws(() => parseListenAddress(':99999', '--listen-address'), /expected host:port/);
  });

  it('maps the defaults: the unix socket, :9376 and :19376, no HTTP listener, no TLS', () => {
    const config = configWith({});
    assert.equal(config.listen.enabled, false);
    assert.equal(config.sources.grpc.length, 1);
    assert.equal(config.sources.grpc[0]!.address, 'unix:///run/falco/falco.sock');
    assert.equal(config.sources.grpc[0]!.connect_timeout, 120_000);
    assert.equal(config.sources.grpc[0]!.keepalive_interval, 1000);
    assert.deepEqual(
      { enabled: config.exporter.enabled, address: config.exporter.address, port: config.exporter.port },
      { enabled: true, address: '', port: 9376 },
    );
    assert.deepEqual(config.exporter.probes, { enabled: true, address: '', port: 19376 });
    assert.deepEqual(config.exporter.tls, { cert_file: '', key_file: '', client_ca_file: '' });
  });

  it('adds unix:// to a bare socket path, as falco-exporter does', () => {
    assert.equal(
      configWith({ clientSocket: '/var/run/falco.sock' }).sources.grpc[0]!.address,
      'unix:///var/run/falco.sock',
    );
  });

  it('dials host:port with the client certificates when --client-hostname is set, and names unreadable ones', () => {
    const pki = makePki();
    const config = configWith({
      clientHostname: 'falco.falco.svc',
      clientPort: '5061',
      clientCa: pki.caCert,
      clientCert: pki.clientCert,
      clientKey: pki.clientKey,
      timeout: '30s',
    });
    assert.equal(config.sources.grpc[0]!.address, 'falco.falco.svc:5061');
    assert.deepEqual(config.sources.grpc[0]!.tls, {
      ca_file: pki.caCert,
      cert_file: pki.clientCert,
      key_file: pki.clientKey,
    });
    assert.equal(config.sources.grpc[0]!.connect_timeout, 30_000);
    assert.throws(
      () =>
        configWith({
          clientHostname: 'falco',
          clientCa: pki.caCert,
          clientCert: '/nope.crt',
          clientKey: pki.clientKey,
        }),
      (err: Error) =>
        err.message ===
        `--client-cert /nope.crt: cannot read it (ENOENT: no such file or directory, access '/nope.crt')`,
    );
    assert.throws(() => configWith({ clientHostname: 'falco', clientPort: 'x' }), /--client-port "x"/);
  });

  it('serves TLS with client certificates only when --server-ca is set', () => {
    assert.deepEqual(configWith({ serverCert: 's.crt', serverKey: 's.key' }).exporter.tls, {
      cert_file: '',
      key_file: '',
      client_ca_file: '',
    });
    assert.deepEqual(
      configWith({ serverCa: 'ca.crt', serverCert: 's.crt', serverKey: 's.key' }).exporter.tls,
      {
        cert_file: 's.crt',
        key_file: 's.key',
        client_ca_file: 'ca.crt',
      },
    );
  });

  it('refuses a --timeout that is not a duration', () => {
    assert.throws(() => configWith({ timeout: 'soon' }), /--timeout "soon": expected a duration/);
    assert.throws(() => configWith({ timeout: '0s' }), /--timeout "0s"/);
    // Go's flag refuses a duration without a unit ("missing unit"), where the config file reads ms.
    assert.throws(
      () => configWith({ timeout: '30' }),
      /--timeout "30": expected a duration such as 2m or 30s/,
    );
  });
});
