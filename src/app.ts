import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
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

/** A running Eyrie: every role the config enables, in one process. */
export interface RunningEyrie {
  config: EyrieConfig;
  metrics: Metrics;
  pipeline: Pipeline;
  /** Bound addresses: the ingest listener, and the plain-HTTP one when TLS moves paths there. */
  addresses: { ingest: string; plain?: string };
  close(): Promise<void>;
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

function createDestinations(
  config: EyrieConfig,
  logger: Logger,
): { config: EyrieConfig['destinations'][number]; destination: Destination }[] {
  const created: { config: EyrieConfig['destinations'][number]; destination: Destination }[] = [];
  try {
    for (const d of config.destinations) {
      const type = destinationTypes.get(d.type);
      if (!type) throw new Error(`destination ${d.name}: unknown type ${d.type}`);
      const destination = type.create(d.options as never, {
        name: d.name,
        logger: logger.child({ destination: d.name }),
        request: d.request,
        dataDir: config.storage.path,
      });
      created.push({ config: d, destination });
    }
  } catch (err) {
    for (const c of created) void c.destination.close();
    throw err;
  }
  return created;
}

/**
 * What the loader's schema cannot see: templates and CEL compile, TLS files read. Run by `eyrie check`
 * and before `serve` starts anything, so both refuse the same configs. Returns every problem.
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
  for (const d of config.destinations)
    attempt(() => compileFilter(d.filter, `destinations.${d.name}.filter`));
  if (config.listen.tls.enabled) attempt(() => readTls(config));
  return problems;
}

async function listen(app: FastifyInstance, host: string, port: number, scheme: string): Promise<string> {
  const address = await app.listen({ host: host === '' ? '0.0.0.0' : host, port });
  return address.replace(/^https?/, scheme);
}

/** Starts every enabled role. Throws (before listening) on anything misconfigured. */
export async function startEyrie(config: EyrieConfig, logger: Logger): Promise<RunningEyrie> {
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
  });
  const pipeline = new Pipeline(enrich, engine, logger.child({ component: 'pipeline' }), (e) =>
    eventCounter.count(e),
  );
  const healthChecks = () => ({ journal: engine.journalHealth() });
  const tls = config.listen.tls;
  const plainPaths = new Set(tls.enabled ? tls.plain_paths : []);

  const apps: FastifyInstance[] = [];
  const addresses: { ingest: string; plain?: string } = { ingest: '' };
  try {
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
  } catch (err) {
    await Promise.allSettled(apps.map((a) => a.close()));
    await engine.close();
    throw err;
  }
  logger.info(
    { addresses, destinations: config.destinations.map((d) => `${d.name} (${d.type})`) },
    'eyrie is listening',
  );

  let closing: Promise<void> | undefined;
  return {
    config,
    metrics,
    pipeline,
    addresses,
    close() {
      closing ??= (async () => {
        // Stop accepting, then flush the journal and let in-flight sends finish.
        await Promise.allSettled(apps.map((a) => a.close()));
        await engine.close();
      })();
      return closing;
    },
  };
}
