import { Transform, type Readable } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
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
import { IngestError } from './decode.ts';
import { IngestCore, type BodyShape, type IngestAnswer } from './ingest-core.ts';
import { JournalUnavailableError } from '../../delivery/journal.ts';
import { closeConnectionsWhileClosing } from '../../util/close-connections.ts';
import { decodeUtf8AsGo } from '../../event/go-utf8.ts';
import { MAX_TIMER_MS } from '../../util/timer.ts';

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
  serverOptions?: Partial<FastifyServerOptions> & { https?: HttpsServerOptions };
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

function decompress(request: FastifyRequest, payload: Readable, limit: number): Readable {
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
  // fastify answers 413 once more than `limit` bytes came out, but leaves the streams running: stop
  // inflating there, or a small gzip bomb (1 MiB in, 1 GiB out) keeps zlib busy long after the answer.
  let inflated = 0;
  const output = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      inflated += chunk.length;
      if (inflated > limit) {
        payload.unpipe(counter);
        inflater.destroy();
      }
      callback(null, chunk);
    },
  }) as Transform & { receivedEncodedLength?: number };
  payload.pipe(counter).pipe(inflater).pipe(output);
  Object.defineProperty(output, 'receivedEncodedLength', { get: () => counter.receivedEncodedLength });
  inflater.on('error', (err) => {
    Object.assign(err, {
      statusCode: 400,
      code: 'EYRIE_BAD_GZIP',
      message: `request body is not valid ${encoding}: ${err.message}`,
    });
    output.destroy(err);
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

  const core = new IngestCore(pipeline, metrics, logger.child({ component: 'ingest' }));

  // `POST /` is the hot path (every Falco alert): without auth or a content encoding it is served
  // straight from node:http with the same IngestCore — fastify's routing and hooks cost a third of
  // the throughput there (docs/performance.md). Everything else goes through fastify.
  const fastPath =
    serves('/') && tokenHashes.length === 0 && !(options.tls && config.listen.tls.require_client_cert);
  let closing = false;
  const respond = (res: ServerResponse, a: IngestAnswer, close = false) => {
    const headers: Record<string, string | number> = {
      'content-length': a.body === undefined ? 0 : Buffer.byteLength(a.body),
    };
    if (a.contentType !== undefined) headers['content-type'] = a.contentType;
    if (close) headers.connection = 'close';
    res.writeHead(a.status, headers);
    res.end(a.body);
  };
  // Answers completed while the event loop is still reading sockets (the poll phase) go out together
  // once every socket that was ready has been read (setImmediate runs right after the poll phase),
  // not one by one. On loopback the kernel does the receiver's work inside our write, waking the
  // client each time; a burst lets those wakeups coalesce: +25–30% req/s here (docs/performance.md).
  // Answers completing later (after a journal group commit, itself a burst) are written at once.
  let turn = { reading: false };
  let pendingAnswers: [ServerResponse, IngestAnswer][] = [];
  const endOfReads = () => {
    turn.reading = false;
    const answers = pendingAnswers;
    pendingAnswers = [];
    for (const [res, a] of answers) respond(res, a);
  };
  const readingTurn = () => {
    if (!turn.reading) {
      turn = { reading: true };
      setImmediate(endOfReads);
    }
    return turn;
  };
  const answerWhenRead = (requestTurn: { reading: boolean }, res: ServerResponse, a: IngestAnswer) => {
    if (requestTurn.reading) pendingAnswers.push([res, a]);
    else respond(res, a);
  };
  const fastIngest = (req: IncomingMessage, res: ServerResponse) => {
    const limit = config.listen.body_limit;
    const tooLarge = () => {
      core.requestsRejected.inc();
      respond(
        res,
        core.error(413, 'body_too_large', `request body exceeds the limit of ${limit} bytes`),
        true,
      );
    };
    if (Number(req.headers['content-length']) > limit) {
      tooLarge();
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > limit) {
        refused = true;
        tooLarge();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (refused) return;
      const body = decodeUtf8AsGo(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      const requestTurn = readingTurn();
      const answer = core.ingest(body, req.headers['content-type'], 'falco');
      if (answer instanceof Promise)
        answer.then(
          (a) => answerWhenRead(requestTurn, res, a),
          (err: unknown) => answerWhenRead(requestTurn, res, core.failure(err)),
        );
      else answerWhenRead(requestTurn, res, answer);
    });
    req.on('error', () => {
      // The sender went away mid-body: nothing was accepted, nothing to answer.
    });
  };
  const { https: httpsOptions, ...serverOptions } = options.serverOptions ?? {};

  const app = Fastify({
    // Per-request lines would dominate the log at ingest rates; errors are logged by our handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.listen.body_limit,
    return503OnClosing: true,
    ...serverOptions,
    serverFactory: (handler) => {
      const listener = (req: IncomingMessage, res: ServerResponse) => {
        if (
          fastPath &&
          req.method === 'POST' &&
          req.url === '/' &&
          req.headers['content-encoding'] === undefined
        ) {
          if (closing) {
            req.resume();
            respond(
              res,
              core.error(503, 'shutting_down', 'Eyrie is shutting down: send to another replica or retry'),
              true,
            );
            return;
          }
          fastIngest(req, res);
          return;
        }
        handler(req, res);
      };
      const server = httpsOptions ? createHttpsServer(httpsOptions, listener) : createHttpServer(listener);
      // Within a Node timer (Node 24 adds a second to it): past ~24.8 days it would fire after 1 ms,
      // with a TimeoutOverflowWarning on stderr for every idle connection.
      server.keepAliveTimeout = Math.min(config.listen.keep_alive_timeout, MAX_TIMER_MS - 1000);
      // Falco keeps one connection open; never cap the number of requests per connection.
      server.maxRequestsPerSocket = 0;
      return server;
    },
  } as FastifyServerOptions);
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  closeConnectionsWhileClosing(app);

  const answer = (reply: FastifyReply, a: IngestAnswer) => {
    void reply.code(a.status);
    if (a.contentType !== undefined) void reply.type(a.contentType);
    return reply.send(a.body);
  };

  const reject = (reply: FastifyReply, status: number, reason: string, message: string, extra: object = {}) =>
    answer(reply, core.error(status, reason, message, extra));

  // Every body is read raw and decoded by us: lossless numbers, JSON/NDJSON/arrays, clear errors.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => {
    done(null, decodeUtf8AsGo(body as Buffer));
  });

  app.addHook('preParsing', (request, _reply, payload, done) => {
    try {
      done(null, decompress(request, payload, config.listen.body_limit));
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

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    // The sender went away mid-body: nothing was refused and nobody reads the answer; the fast path
    // does not count it either.
    if (request.raw.destroyed && !request.raw.complete) return reply.code(400).send();
    // A body refused before it reached IngestCore (too large, bad encoding): a rejected request, as
    // Falcosidekick counts every one it refuses (the fast path counts its own 413).
    if (request.method === 'POST') core.requestsRejected.inc();
    if (error instanceof IngestError || error instanceof JournalUnavailableError)
      return answer(reply, core.failure(error));
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

  const ingest = async (request: FastifyRequest, reply: FastifyReply, shape: BodyShape) =>
    answer(reply, await core.ingest(request.body, request.headers['content-type'], shape));

  app.setNotFoundHandler((request, reply) => {
    // Falcosidekick takes events on Go's "/" pattern, which matches every path no other route has:
    // a Falco http_output URL with a path (http://sidekick:2801/falco) must keep working.
    if (request.method === 'POST' && serves('/')) return ingest(request, reply, 'falco');
    // Falcosidekick refuses any other method there (400) and counts a rejected input: so does Eyrie,
    // with a 404 that says what is wrong.
    if (serves('/')) core.requestsRejected.inc();
    return reject(reply, 404, 'not_found', `no route ${request.method} ${request.url}`);
  });

  const handlers: Record<string, (request: FastifyRequest, reply: FastifyReply) => unknown> = {
    '/': (req, reply) => ingest(req, reply, 'falco'),
    '/api/v1/': (req, reply) => ingest(req, reply, 'ui'),
    '/api/v1/events/add': (req, reply) => ingest(req, reply, 'ui'),
    '/test': async (_req, reply) => answer(reply, await core.ingestTest()),
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
        if (path === '/') core.requestsRejected.inc(); // as the 400 Falcosidekick answers there
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
