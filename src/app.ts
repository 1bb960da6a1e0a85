import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import type { EyrieConfig } from './config/types.ts';
import { Metrics } from './metrics/registry.ts';
import { SidekickEventCounter } from './metrics/sidekick-events.ts';
import { destinationTypes } from './destinations/registry.ts';
import type { Destination } from './destinations/types.ts';
import { DeliveryEngine } from './delivery/engine.ts';
import { Pipeline } from './routing/pipeline.ts';
import { createEnricher } from './enrich/enrich.ts';
import { buildIngestApp } from './sources/http/server.ts';
import { compileFilter } from './routing/filter.ts';
import { FalcoEventsCounter } from './metrics/falco-events.ts';
import { EventCounters } from './metrics/event-counters.ts';
import { buildExporterMetricsApp, buildProbesApp, exporterTlsOptions } from './metrics/exporter-server.ts';
import { createSources, type SourceOptions } from './sources/create.ts';
import type { EventSource } from './sources/source.ts';
import { errorCode } from './util/error.ts';
import { CERTIFICATE_CHECK_INTERVAL_MS, watchFiles } from './util/file-watch.ts';
import { unusablePath } from './util/directory.ts';
import { timerDelay } from './util/timer.ts';
import { DestinationSettingError } from './config/errors.ts';
import { secretValues } from './config/render.ts';

/** A running Eyrie: every role the config enables, in one process. */
export interface RunningEyrie {
  config: EyrieConfig;
  metrics: Metrics;
  pipeline: Pipeline;
  sources: EventSource[];
  /**
   * Bound addresses: the ingest listener (when enabled), the plain-HTTP one when TLS moves paths
   * there, and falco-exporter's metrics and probes listeners.
   */
  addresses: Addresses;
  /** falco-exporter's readiness: the ingest listener is up, or a source is receiving. */
  ready(): boolean;
  close(): Promise<void>;
}

export interface Addresses {
  ingest?: string;
  plain?: string;
  exporter?: string;
  probes?: string;
}

function readTls(config: EyrieConfig): object {
  const tls = config.listen.tls;
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`listen.tls.${what}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const options: Record<string, unknown> = {
    cert: read(tls.cert_file, 'cert_file'),
    key: read(tls.key_file, 'key_file'),
  };
  if (tls.require_client_cert) {
    options.ca = read(tls.client_ca_file, 'client_ca_file');
    // The handshake accepts any certificate; the ingest hook answers 401/403 so the sender sees why.
    options.requestCert = true;
    options.rejectUnauthorized = false;
    options.minVersion = 'TLSv1.2';
  }
  return options;
}

type DestinationConfig = EyrieConfig['destinations'][number];

/** The destination's type and what its create() or check() gets. */
function destinationSetup(config: EyrieConfig, d: DestinationConfig, logger: Logger) {
  const type = destinationTypes.get(d.type);
  if (!type) throw new Error(`destination ${d.name}: unknown type ${d.type}`);
  const context = {
    name: d.name,
    logger: logger.child({ destination: d.name }),
    request: d.request,
    dataDir: config.storage.path,
    batch: d.batch,
  };
  return { type, options: d.options as never, context };
}

/** What building the destination would refuse (files, URLs, TLS material), without its side effects. */
function checkDestination(config: EyrieConfig, d: DestinationConfig): void {
  const { type, options, context } = destinationSetup(config, d, pino({ level: 'silent' }));
  if (type.check) type.check(options, context);
  else void type.create(options, context).close();
}

function createDestinations(
  config: EyrieConfig,
  logger: Logger,
): { config: DestinationConfig; destination: Destination }[] {
  const created: { config: DestinationConfig; destination: Destination }[] = [];
  try {
    for (const d of config.destinations) {
      const { type, options, context } = destinationSetup(config, d, logger);
      created.push({ config: d, destination: type.create(options, context) });
    }
  } catch (err) {
    for (const c of created) void c.destination.close();
    throw err;
  }
  return created;
}

/**
 * What the loader's schema cannot see: templates and CEL compile, TLS files read. Run by `eyrie check`
 * and before `serve` starts anything, so both refuse the same configs. Returns every problem, each as
 * `setting.path: detail` (located in the file by locateProblems).
 */
export function preflight(config: EyrieConfig): string[] {
  const problems: string[] = [];
  const attempt = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      problems.push((err as Error).message);
    }
  };
  attempt(() => createEnricher(config.enrich));
  config.destinations.forEach((d, index) => {
    attempt(() => compileFilter(d.filter, `destinations[${index}].filter`));
    attempt(() => {
      try {
        checkDestination(config, d);
      } catch (err) {
        if (err instanceof DestinationSettingError)
          throw new Error(`destinations[${index}].${err.key}: ${err.detail}`, { cause: err });
        throw new Error(`destinations[${index}]: ${(err as Error).message}`, { cause: err });
      }
    });
  });
  // Only when something keeps state there: the exporter alone (falco-exporter's chart, a read-only
  // root file system) or memory-only destinations never touch it.
  const usesStorage =
    config.destinations.some((d) => d.durability === 'disk') || config.sources.files.length > 0;
  if (usesStorage) {
    attempt(() => {
      const problem = unusablePath(config.storage.path, 'directory');
      if (problem !== undefined) throw new Error(`storage.path: ${problem}`);
    });
  }
  if (config.listen.enabled && config.listen.tls.enabled) attempt(() => readTls(config));
  if (config.exporter.enabled) attempt(() => exporterTlsOptions(config.exporter));
  config.sources.grpc.forEach((grpc, index) => {
    if (grpc.address.startsWith('unix:') || grpc.address.startsWith('/')) return;
    // Falco serves TCP only with mutual TLS: without these files no connection can ever succeed.
    for (const key of ['ca_file', 'cert_file', 'key_file'] as const) {
      attempt(() => {
        try {
          readFileSync(grpc.tls[key]);
        } catch (err) {
          throw new Error(
            `sources.grpc[${index}].tls.${key}: cannot read ${grpc.tls[key]} (Falco's gRPC over TCP requires mutual TLS): ${(err as Error).message}`,
            { cause: err },
          );
        }
      });
    }
  });
  problems.push(...portClashes(config));
  if (
    !config.listen.enabled &&
    config.sources.grpc.length + config.sources.files.length === 0 &&
    !config.sources.stdin
  )
    problems.push('nothing to receive events from: listen.enabled is false and no source is configured');
  return problems;
}

/** Addresses that take a port on every interface, IPv6 and IPv4 (dual-stack): any other listener clashes. */
const EVERY_ADDRESS = new Set(['', '::', '[::]']);

/**
 * Whether listeners on these two addresses (one port) clash. `0.0.0.0` takes the port on every IPv4
 * address only: an IPv6 one (`::1`) binds beside it (measured on Linux), so check must not refuse it.
 */
function addressesClash(a: string, b: string): boolean {
  if (a === b || EVERY_ADDRESS.has(a) || EVERY_ADDRESS.has(b)) return true;
  // An IPv4-mapped address (`::ffff:127.0.0.1`) is an IPv4 one.
  const ipv4 = (address: string) => !isIPv6(address) || /^::ffff:\d/i.test(address);
  if (a === '0.0.0.0') return ipv4(b);
  if (b === '0.0.0.0') return ipv4(a);
  return false;
}

/**
 * Two listeners `serve` would start on one port (the second could not bind): `check` says so too.
 * Port 0 (a free port each) never clashes.
 */
function portClashes(config: EyrieConfig): string[] {
  const { listen, exporter } = config;
  const listeners: { key: string; address: string; port: number }[] = [];
  if (listen.enabled) {
    listeners.push({ key: 'listen.port', address: listen.address, port: listen.port });
    if (listen.tls.enabled && listen.tls.plain_paths.length > 0)
      listeners.push({ key: 'listen.tls.plain_port', address: listen.address, port: listen.tls.plain_port });
  }
  if (exporter.enabled) {
    listeners.push({ key: 'exporter.port', address: exporter.address, port: exporter.port });
    if (exporter.probes.enabled)
      listeners.push({
        key: 'exporter.probes.port',
        address: exporter.probes.address,
        port: exporter.probes.port,
      });
  }
  const problems: string[] = [];
  listeners.forEach((b, i) => {
    const a = listeners
      .slice(0, i)
      .find((a) => a.port === b.port && b.port !== 0 && addressesClash(a.address, b.address));
    if (a !== undefined)
      problems.push(`${b.key}: ${b.port} is also ${a.key}: two listeners cannot share a port and address`);
  });
  return problems;
}

/**
 * `""` is every address, IPv6 and IPv4 (`::`, dual-stack), as Go's `:port` listens in Falcosidekick
 * and falco-exporter: an IPv6-only cluster's probes reach the pod's IPv6 address. Where the machine
 * has no IPv6, IPv4's `0.0.0.0`.
 */
async function listen(app: FastifyInstance, host: string, port: number, scheme: string): Promise<string> {
  let address: string;
  if (host !== '') address = await app.listen({ host, port });
  else {
    try {
      address = await app.listen({ host: '::', port });
    } catch (err) {
      const code = errorCode(err);
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
      address = await app.listen({ host: '0.0.0.0', port });
    }
  }
  return address.replace(/^https?/, scheme);
}

export interface StartOptions extends SourceOptions {
  /** How often the ingest listener's certificate files are checked for a new version (ms; tests lower it). */
  certificateCheckInterval?: number;
}

/** Starts every enabled role. Throws (before listening) on anything misconfigured. */
export async function startEyrie(
  config: EyrieConfig,
  logger: Logger,
  startOptions: StartOptions = {},
): Promise<RunningEyrie> {
  const { certificateCheckInterval = CERTIFICATE_CHECK_INTERVAL_MS, ...sourceOptions } = startOptions;
  const problems = preflight(config);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  const metrics = new Metrics();
  const enrich = createEnricher(config.enrich);
  const eventCounter = new SidekickEventCounter(
    metrics,
    config.enrich,
    config.metrics.extra_labels,
    config.metrics.max_series,
  );
  if (eventCounter.skippedLabels.length > 0) {
    logger.warn(
      { keys: eventCounter.skippedLabels },
      'these fields are not valid Prometheus label names and are not metric labels',
    );
  }
  const engine = new DeliveryEngine({
    dataDir: config.storage.path,
    delivery: config.delivery,
    destinations: createDestinations(config, logger),
    metrics,
    logger: logger.child({ component: 'delivery' }),
    secrets: secretValues(config),
  });
  // Listening means fully started: the journal's checkpoint thread is up too.
  await engine.ready();
  const falcoEvents = new FalcoEventsCounter(metrics, config.metrics.extra_labels, config.metrics.max_series);
  const eventCounters = new EventCounters(eventCounter, falcoEvents);
  const pipeline = new Pipeline(enrich, engine, logger.child({ component: 'pipeline' }), (e) =>
    eventCounters.count(e),
  );
  const sources = await createSources(
    config,
    { pipeline, metrics, logger: logger.child({ component: 'source' }), dataDir: config.storage.path },
    sourceOptions,
  );
  const healthChecks = () => {
    const checks: Record<string, { ok: boolean; detail?: string }> = { journal: engine.journalHealth() };
    for (const s of sources) {
      if (s.kind === 'stdin') continue;
      const ok = s.ready();
      checks[`source ${s.kind} ${s.target}`] = ok ? { ok } : { ok, detail: 'not connected or not readable' };
    }
    return checks;
  };
  const tls = config.listen.tls;
  const plainPaths = new Set(tls.enabled ? tls.plain_paths : []);

  const apps: FastifyInstance[] = [];
  const addresses: Addresses = {};
  let ingestListening = false;
  const ready = () => ingestListening || sources.some((s) => s.ready());
  try {
    if (config.exporter.enabled) {
      const exporter = config.exporter;
      const metricsApp = buildExporterMetricsApp(exporter, metrics);
      apps.push(metricsApp);
      const { cert_file: cert, key_file: key, client_ca_file: ca } = exporter.tls;
      if (cert !== '')
        reloadCertificates(
          metricsApp,
          'exporter.tls',
          [cert, key, ca].filter((f) => f !== ''),
          () => exporterTlsOptions(exporter),
        );
      addresses.exporter = await listen(
        metricsApp,
        exporter.address,
        exporter.port,
        exporter.tls.cert_file === '' ? 'http' : 'https',
      );
      if (exporter.probes.enabled) {
        const probes = buildProbesApp(ready, logger.child({ component: 'probes' }));
        apps.push(probes);
        addresses.probes = await listen(probes, exporter.probes.address, exporter.probes.port, 'http');
      }
    }
    if (config.listen.enabled) await startIngest();
    for (const s of sources) s.start();
  } catch (err) {
    await Promise.allSettled(apps.map((a) => a.close()));
    await engine.close();
    throw err;
  }

  /**
   * Serves a renewed certificate (cert-manager rewrites the secret before the old one expires) to new
   * connections, without a restart; a pair that cannot be used (a key not written yet) leaves the
   * current one in place until the files change again.
   */
  function reloadCertificates(
    app: FastifyInstance,
    what: string,
    files: readonly string[],
    read: () => object | undefined,
  ): void {
    const stop = watchFiles(files, certificateCheckInterval, () => {
      try {
        (app.server as unknown as TlsServer).setSecureContext(read() ?? {});
        logger.info({ files }, `${what}: the certificate files changed; new connections use the new ones`);
      } catch (err) {
        logger.warn(
          { files, error: (err as Error).message },
          `${what}: the certificate files changed but cannot be used; the listener keeps the ones it has (read again when they change)`,
        );
      }
    });
    app.addHook('onClose', (_app, done) => {
      stop();
      done();
    });
  }

  async function startIngest(): Promise<void> {
    const main = buildIngestApp({
      config,
      pipeline,
      metrics,
      logger,
      healthChecks,
      tls: tls.enabled,
      serves: (path) => !plainPaths.has(path),
      ...(tls.enabled ? { serverOptions: { https: readTls(config) } } : {}),
    });
    apps.push(main);
    if (tls.enabled) {
      const files = [tls.cert_file, tls.key_file, ...(tls.require_client_cert ? [tls.client_ca_file] : [])];
      reloadCertificates(main, 'listen.tls', files, () => readTls(config));
    }
    addresses.ingest = await listen(
      main,
      config.listen.address,
      config.listen.port,
      tls.enabled ? 'https' : 'http',
    );
    if (plainPaths.size > 0) {
      const plain = buildIngestApp({
        config,
        pipeline,
        metrics,
        logger,
        healthChecks,
        serves: (path) => plainPaths.has(path),
      });
      apps.push(plain);
      addresses.plain = await listen(plain, config.listen.address, tls.plain_port, 'http');
    }
    ingestListening = true;
  }

  logger.info(
    {
      addresses,
      sources: sources.map((s) => `${s.kind} ${s.target}`),
      destinations: config.destinations.map((d) => `${d.name} (${d.type})`),
    },
    'eyrie is listening',
  );

  let closing: Promise<void> | undefined;
  return {
    config,
    metrics,
    pipeline,
    sources,
    addresses,
    ready,
    close() {
      closing ??= (async () => {
        // Stop accepting (sources save their offsets), then flush the journal and let in-flight sends finish.
        ingestListening = false;
        // Kubernetes keeps routing new connections here until the endpoint removal reaches every node
        // (a second or more after SIGTERM), and Falco drops an alert whose post is refused: go on
        // answering (and journaling) meanwhile. Readiness already reports not ready.
        const drain = config.listen.enabled ? config.listen.shutdown_delay : 0;
        if (drain > 0) {
          logger.info(
            { shutdownDelaySeconds: drain / 1000 },
            'still accepting events for listen.shutdown_delay while load balancers stop routing here',
          );
          await new Promise((resolve) => setTimeout(resolve, timerDelay(drain)));
        }
        await Promise.allSettled([...sources.map((s) => s.close()), ...apps.map((a) => a.close())]);
        await engine.close();
      })();
      return closing;
    },
  };
}
