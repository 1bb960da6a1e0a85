import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { EyrieConfig } from './config/types.ts';
import { Metrics } from './metrics/registry.ts';
import { destinationTypes } from './destinations/registry.ts';
import { DirectRouter, type Router } from './routing/router.ts';
import { Pipeline } from './routing/pipeline.ts';
import { createEnricher } from './enrich/enrich.ts';
import { buildIngestApp } from './sources/http/server.ts';

/** A running Eyrie: every role the config enables, in one process. */
export interface RunningEyrie {
  config: EyrieConfig;
  metrics: Metrics;
  pipeline: Pipeline;
  /** Bound addresses, e.g. { ingest: 'http://127.0.0.1:2801', plain: … }. */
  addresses: Record<string, string>;
  close(): Promise<void>;
}

function readTls(config: EyrieConfig): object {
  const tls = config.listen.tls;
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`listen.tls.${what}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const options: Record<string, unknown> = { cert: read(tls.cert_file, 'cert_file'), key: read(tls.key_file, 'key_file') };
  if (tls.require_client_cert) {
    options.ca = read(tls.client_ca_file, 'client_ca_file');
    // The handshake accepts any certificate; the ingest hook answers 401/403 so the sender sees why.
    options.requestCert = true;
    options.rejectUnauthorized = false;
    options.minVersion = 'TLSv1.2';
  }
  return options;
}

function createRouter(config: EyrieConfig, metrics: Metrics, logger: Logger): Router {
  const routes = config.destinations.map((d) => {
    const type = destinationTypes.get(d.type);
    if (!type) throw new Error(`destination ${d.name}: unknown type ${d.type}`);
    const destination = type.create(d.options as never, { name: d.name, logger: logger.child({ destination: d.name }) });
    return { config: d, destination };
  });
  return new DirectRouter(routes, metrics, logger.child({ component: 'router' }));
}

async function listen(app: FastifyInstance, host: string, port: number, scheme: string): Promise<string> {
  const address = await app.listen({ host: host === '' ? '0.0.0.0' : host, port });
  return address.replace(/^https?/, scheme);
}

/** Starts every enabled role. Throws (before listening) on anything misconfigured. */
export async function startEyrie(config: EyrieConfig, logger: Logger): Promise<RunningEyrie> {
  const metrics = new Metrics();
  const enrich = createEnricher(config.enrich);
  const router = createRouter(config, metrics, logger);
  const pipeline = new Pipeline(enrich, router, logger.child({ component: 'pipeline' }));
  const tls = config.listen.tls;
  const plainPaths = new Set(tls.enabled ? tls.plain_paths : []);

  const apps: FastifyInstance[] = [];
  const addresses: Record<string, string> = {};
  const main = buildIngestApp({
    config,
    pipeline,
    metrics,
    logger,
    tls: tls.enabled,
    serves: (path) => !plainPaths.has(path),
    ...(tls.enabled ? { serverOptions: { https: readTls(config) } } : {}),
  });
  apps.push(main);
  try {
    addresses.ingest = await listen(main, config.listen.address, config.listen.port, tls.enabled ? 'https' : 'http');
    if (plainPaths.size > 0) {
      const plain = buildIngestApp({ config, pipeline, metrics, logger, serves: (path) => plainPaths.has(path) });
      apps.push(plain);
      addresses.plain = await listen(plain, config.listen.address, tls.plain_port, 'http');
    }
  } catch (err) {
    await Promise.allSettled(apps.map((a) => a.close()));
    await router.close();
    throw err;
  }
  logger.info({ addresses, destinations: config.destinations.map((d) => `${d.name} (${d.type})`) }, 'eyrie is listening');

  let closing: Promise<void> | undefined;
  return {
    config,
    metrics,
    pipeline,
    addresses,
    close() {
      closing ??= (async () => {
        // Stop accepting first, then let in-flight deliveries finish.
        await Promise.allSettled(apps.map((a) => a.close()));
        await router.close();
      })();
      return closing;
    },
  };
}
