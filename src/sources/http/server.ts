import { Transform, type Readable } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { Logger } from 'pino';
import type { EyrieConfig } from '../../config/types.ts';
import type { Metrics } from '../../metrics/registry.ts';
import type { Pipeline } from '../../routing/pipeline.ts';
import { decodeBody, IngestError } from './decode.ts';
import { testEvent } from '../../event/falco-event.ts';
import { JournalUnavailableError } from '../../delivery/journal.ts';

export interface IngestAppOptions {
  config: EyrieConfig;
  pipeline: Pipeline;
  metrics: Metrics;
  logger: Logger;
  /** Which routes this listener serves (the TLS/plain split of Falcosidekick's `notlspaths`). */
  serves?: (path: string) => boolean;
  /** Whether requests on this listener arrive over TLS (for the mTLS check). */
  tls?: boolean;
  /** Extra fastify server options (https, serverFactory) for the listener. */
  serverOptions?: Partial<FastifyServerOptions> & { https?: object };
  /** Extra health checks (journal, store…) contributed by other roles. */
  healthChecks?: () => Record<string, { ok: boolean; detail?: string }>;
}

const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** Routes of the ingest listener: path → methods it answers. Anything else on the path is a 405. */
const ROUTES: Record<string, readonly string[]> = {
  '/': ['POST'],
  '/test': ['POST'],
  '/api/v1/': ['POST'],
  '/api/v1/events/add': ['POST'],
  '/healthz': ['GET', 'HEAD'],
  '/ping': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
};

/** Counts compressed bytes so fastify checks Content-Length against what was actually received. */
class CountingGunzip extends Transform {
  receivedEncodedLength = 0;
}

function decompress(request: FastifyRequest, payload: Readable): Readable {
  const encoding = (request.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  if (encoding === 'identity' || encoding === '') return payload;
  if (encoding !== 'gzip' && encoding !== 'x-gzip' && encoding !== 'deflate') {
    throw new IngestError(
      415,
      'unsupported_encoding',
      `Content-Encoding "${encoding}" is not supported: use gzip, deflate or none`,
    );
  }
  const inflater = encoding === 'deflate' ? createInflate() : createGunzip();
  const counter = new CountingGunzip({
    transform(chunk: Buffer, _enc, callback) {
      counter.receivedEncodedLength += chunk.length;
      callback(null, chunk);
    },
  });
  const output = payload.pipe(counter).pipe(inflater) as Readable & { receivedEncodedLength?: number };
  Object.defineProperty(output, 'receivedEncodedLength', { get: () => counter.receivedEncodedLength });
  inflater.on('error', (err) => {
    Object.assign(err, {
      statusCode: 400,
      code: 'EYRIE_BAD_GZIP',
      message: `request body is not valid ${encoding}: ${err.message}`,
    });
  });
  return output;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Builds the ingest listener (Falcosidekick's :2801 surface). Not yet listening. */
export function buildIngestApp(options: IngestAppOptions): FastifyInstance {
  const { config, pipeline, metrics, logger } = options;
  const serves = options.serves ?? (() => true);
  const tokenHashes = config.auth.tokens.map(sha256);
  const exempt = new Set(config.auth.exempt_paths);

  const app = Fastify({
    loggerInstance: logger.child({ component: 'ingest' }),
    // Per-request lines would dominate the log at ingest rates; errors are logged by our handler.
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger: request logs are off, and a child per request costs at ingest rates.
    childLoggerFactory: (logger: Logger) => logger,
    bodyLimit: config.listen.body_limit,
    keepAliveTimeout: config.listen.keep_alive_timeout,
    // Falco keeps one connection open; never cap the number of requests per connection.
    maxRequestsPerSocket: 0,
    return503OnClosing: true,
    ...options.serverOptions,
  } as FastifyServerOptions);

  // Fixed label sets: resolved once, incremented as plain additions.
  const requestsAccepted = metrics.sidekickInputs.handle({ source: 'requests', status: 'accepted' });
  const requestsRejected = metrics.sidekickInputs.handle({ source: 'requests', status: 'rejected' });
  const eventsAccepted = metrics.ingestEvents.handle({ source: 'http', outcome: 'accepted' });
  const eventsRejected = metrics.ingestEvents.handle({ source: 'http', outcome: 'rejected' });

  const reject = (
    reply: FastifyReply,
    status: number,
    reason: string,
    message: string,
    extra: object = {},
  ) => {
    metrics.ingestRejections.inc({ code: String(status), reason });
    return reply.code(status).send({ statusCode: status, error: reason, message, ...extra });
  };

  // Every body is read raw and decoded by us: lossless numbers, JSON/NDJSON/arrays, clear errors.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    done(null, body);
  });

  app.addHook('preParsing', (request, _reply, payload, done) => {
    try {
      done(null, decompress(request, payload));
    } catch (err) {
      done(err as Error);
    }
  });

  app.addHook('onRequest', (request, reply, done) => {
    const path = request.url.split('?', 1)[0]!;
    if (exempt.has(path)) {
      done();
      return;
    }
    if (options.tls && config.listen.tls.require_client_cert) {
      const socket = request.raw.socket as unknown as Partial<TLSSocket>;
      const cert = socket.getPeerCertificate?.();
      if (!cert || Object.keys(cert).length === 0) {
        void reject(
          reply,
          401,
          'client_certificate_required',
          'a client certificate is required (mutual TLS)',
        );
        return;
      }
      if (!socket.authorized) {
        void reject(
          reply,
          403,
          'client_certificate_rejected',
          `client certificate rejected: ${String(socket.authorizationError)}`,
        );
        return;
      }
    }
    if (tokenHashes.length > 0) {
      const header = request.headers.authorization ?? '';
      const match = /^Bearer\s+(.+)$/i.exec(header);
      if (!match) {
        void reply.header('www-authenticate', 'Bearer');
        void reject(reply, 401, 'unauthorized', 'missing bearer token: send "Authorization: Bearer <token>"');
        return;
      }
      const presented = sha256(match[1]!.trim());
      if (!tokenHashes.some((h) => timingSafeEqual(h, presented))) {
        void reject(reply, 403, 'forbidden', 'bearer token not accepted');
        return;
      }
    }
    done();
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _request, reply) => {
    if (error instanceof IngestError)
      return reject(reply, error.status, error.reason, error.message, error.extra);
    if (error instanceof JournalUnavailableError) {
      // Never a 200 for what is not on disk. Falco counts any answer as delivered, so say it loudly.
      logger.error({ err: error }, 'journal unavailable: refusing events');
      return reject(reply, 503, 'journal_unavailable', error.message);
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reject(
        reply,
        413,
        'body_too_large',
        `request body exceeds the limit of ${config.listen.body_limit} bytes`,
      );
    }
    if (error.code === 'EYRIE_BAD_GZIP' || error.code === 'Z_DATA_ERROR' || error.code === 'Z_BUF_ERROR') {
      return reject(reply, 400, 'bad_encoding', error.message);
    }
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) logger.error({ err: error }, 'ingest request failed');
    return reject(
      reply,
      status,
      status === 500 ? 'internal_error' : (error.code ?? 'bad_request'),
      error.message,
    );
  });

  app.setNotFoundHandler((request, reply) =>
    reject(reply, 404, 'not_found', `no route ${request.method} ${request.url}`),
  );

  const ingest = async (request: FastifyRequest, reply: FastifyReply, shape: 'falco' | 'ui') => {
    let decoded;
    try {
      decoded = decodeBody(request.body, request.headers['content-type'], shape);
    } catch (err) {
      requestsRejected.inc();
      throw err;
    }
    const { events, errors, batch } = decoded;
    if (events.length === 0) {
      requestsRejected.inc();
      eventsRejected.inc(errors.length);
      const first = errors[0]!;
      const message = batch
        ? `no valid event in the batch (first problem: event ${first.index}: ${first.message})`
        : first.message;
      return reject(reply, 400, 'invalid_event', message, batch ? { errors } : {});
    }
    await pipeline.accept(events, 'http');
    requestsAccepted.inc();
    eventsAccepted.inc(events.length);
    if (errors.length > 0) eventsRejected.inc(errors.length);
    if (shape === 'ui') return reply.code(200).type('application/json').send('{}');
    if (!batch) return reply.code(200).send();
    return reply.code(200).send({ accepted: events.length, rejected: errors.length, errors });
  };

  const handlers: Record<string, (request: FastifyRequest, reply: FastifyReply) => unknown> = {
    '/': (req, reply) => ingest(req, reply, 'falco'),
    '/api/v1/': (req, reply) => ingest(req, reply, 'ui'),
    '/api/v1/events/add': (req, reply) => ingest(req, reply, 'ui'),
    '/test': async (_req, reply) => {
      await pipeline.accept([testEvent()], 'test');
      requestsAccepted.inc();
      return reply.code(200).send();
    },
    '/ping': (_req, reply) => reply.type('text/plain; charset=utf-8').send('pong\n'),
    '/metrics': async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()),
    '/healthz': (_req, reply) => {
      const destinations = pipeline.health();
      const checks = options.healthChecks?.() ?? {};
      const degraded = [
        ...destinations.filter((d) => !d.healthy).map((d) => `destination ${d.name}`),
        ...Object.entries(checks)
          .filter(([, c]) => !c.ok)
          .map(([name]) => name),
      ];
      return reply.send({
        status: degraded.length === 0 ? 'ok' : 'degraded',
        ...(degraded.length > 0 ? { degraded } : {}),
        checks,
        destinations,
      });
    },
  };

  for (const [path, methods] of Object.entries(ROUTES)) {
    if (!serves(path)) continue;
    app.route({ method: [...methods], url: path, handler: handlers[path]! });
    const others = ALL_METHODS.filter((m) => !methods.includes(m));
    app.route({
      method: others,
      url: path,
      handler: (request, reply) => {
        void reply.header('allow', methods.join(', '));
        return reject(
          reply,
          405,
          'method_not_allowed',
          `${request.method} is not allowed on ${path}: use ${methods.join(' or ')}`,
        );
      },
    });
  }
  return app;
}
