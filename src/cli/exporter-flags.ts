import { accessSync, constants } from 'node:fs';
import type { EyrieConfig } from '../config/types.ts';
import { lacksDurationUnit, parseDuration } from '../config/units.ts';

/** falco-exporter's command-line flags, with its defaults (cmd/falco-exporter). */
export interface ExporterFlags {
  clientSocket: string;
  clientHostname?: string;
  clientPort: string;
  clientCa: string;
  clientCert: string;
  clientKey: string;
  listenAddress: string;
  probesListenAddress: string;
  timeout: string;
  serverCa: string;
  serverCert: string;
  serverKey: string;
}

/** Go's `host:port` listen syntax: `:9376` (all interfaces), `0.0.0.0:9376`, `[::1]:9376`. */
export function parseListenAddress(text: string, flag: string): { address: string; port: number } {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new Error(`${flag} "${text}": expected host:port, e.g. ":9376" or "127.0.0.1:9376"`);
  return { address: m[1] ?? m[2] ?? '', port };
}

/**
 * Turns falco-exporter's flags into the config: one gRPC source (the socket, or host:port with mutual
 * TLS when --client-hostname is given, as falco-exporter chooses), the metrics and probes listeners,
 * and no HTTP ingest listener (falco-exporter has none). Unlike falco-exporter, a lost connection is
 * retried with backoff instead of exiting, and --timeout bounds each attempt.
 */
export function applyExporterFlags(config: EyrieConfig, flags: ExporterFlags): void {
  const timeout = lacksDurationUnit(flags.timeout) ? undefined : parseDuration(flags.timeout);
  if (timeout === undefined || timeout <= 0)
    throw new Error(`--timeout "${flags.timeout}": expected a duration such as 2m or 30s`);
  let address: string;
  if (flags.clientHostname) {
    const port = Number(flags.clientPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new Error(`--client-port "${flags.clientPort}": expected a port number`);
    address = `${flags.clientHostname}:${port}`;
    // Falco serves TCP only with mutual TLS: name the flag, not the config key it becomes.
    const files: [flag: string, path: string][] = [
      ['--client-ca', flags.clientCa],
      ['--client-cert', flags.clientCert],
      ['--client-key', flags.clientKey],
    ];
    const unreadable = files.flatMap(([flag, path]) => {
      try {
        accessSync(path, constants.R_OK);
        return [];
      } catch (err) {
        return [`${flag} ${path}: cannot read it (${(err as Error).message})`];
      }
    });
    if (unreadable.length > 0) throw new Error(unreadable.join('\n'));
  } else {
    address = flags.clientSocket.startsWith('unix://') ? flags.clientSocket : `unix://${flags.clientSocket}`;
  }
  config.sources.grpc = [
    {
      address,
      method: 'sub',
      tls: { ca_file: flags.clientCa, cert_file: flags.clientCert, key_file: flags.clientKey },
      keepalive_interval: 1000,
      connect_timeout: timeout,
      reconnect: { initial_interval: 1000, max_interval: 30_000 },
      poll_interval: 1000,
    },
    ...config.sources.grpc,
  ];
  const metricsAddress = parseListenAddress(flags.listenAddress, '--listen-address');
  const probesAddress = parseListenAddress(flags.probesListenAddress, '--probes-listen-address');
  config.exporter.enabled = true;
  config.exporter.address = metricsAddress.address;
  config.exporter.port = metricsAddress.port;
  config.exporter.probes = { enabled: true, ...probesAddress };
  // falco-exporter serves TLS only when --server-ca is set, and then requires client certificates.
  config.exporter.tls =
    flags.serverCa === ''
      ? { cert_file: '', key_file: '', client_ca_file: '' }
      : { cert_file: flags.serverCert, key_file: flags.serverKey, client_ca_file: flags.serverCa };
  config.listen.enabled = false;
}
