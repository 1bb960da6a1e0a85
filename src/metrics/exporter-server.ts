import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { ExporterConfig } from '../config/types.ts';
import type { Metrics } from './registry.ts';
import { closeConnectionsWhileClosing } from '../util/close-connections.ts';

function readFile(file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`exporter.tls.${key}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * TLS options of the metrics listener, as falco-exporter's --server-cert/--server-key/--server-ca:
 * with a client CA, only clients holding a certificate it signed get through the handshake.
 */
export function exporterTlsOptions(config: ExporterConfig): object | undefined {
  const tls = config.tls;
  if (tls.cert_file === '') return undefined;
  const options: Record<string, unknown> = {
    cert: readFile(tls.cert_file, 'cert_file'),
    key: readFile(tls.key_file, 'key_file'),
    minVersion: 'TLSv1.2',
  };
  if (tls.client_ca_file !== '') {
    options.ca = readFile(tls.client_ca_file, 'client_ca_file');
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  return options;
}

/** Go's http.NotFound, which falco-exporter's muxes answer for any other path. */
function goNotFound(reply: FastifyReply): FastifyReply {
  return reply
    .code(404)
    .header('x-content-type-options', 'nosniff')
    .type('text/plain; charset=utf-8')
    .send('404 page not found\n');
}

/** falco-exporter's metrics listener (:9376): GET /metrics, the whole registry in text format. */
export function buildExporterMetricsApp(config: ExporterConfig, metrics: Metrics): FastifyInstance {
  const https = exporterTlsOptions(config);
  const app = Fastify({ logger: false, ...(https ? { https } : {}) });
  closeConnectionsWhileClosing(app);
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  app.setNotFoundHandler((_req, reply) => goNotFound(reply));
  return app;
}

/**
 * falco-exporter's probes listener (:19376): /liveness is 204 while the process runs; /readiness is
 * 204 once a source is receiving (falco-exporter: once the gRPC stream opened) and 404 before.
 */
export function buildProbesApp(ready: () => boolean, logger: Logger): FastifyInstance {
  const app = Fastify({ logger: false });
  closeConnectionsWhileClosing(app);
  let wasReady = false;
  app.get('/liveness', (_req, reply) => reply.code(204).send());
  app.get('/readiness', (_req, reply) => {
    const now = ready();
    if (now !== wasReady) logger.info({ ready: now }, 'readiness changed');
    wasReady = now;
    // Not ready: falco-exporter has not registered the route yet, so its mux answers not found.
    return now ? reply.code(204).send() : goNotFound(reply);
  });
  app.setNotFoundHandler((_req, reply) => goNotFound(reply));
  return app;
}
