import type { FastifyInstance } from 'fastify';

/** How often, while `app` closes, its idle keep-alive connections are closed. */
const IDLE_SWEEP_MS = 100;

/**
 * While `app` closes, closes its keep-alive connections as each becomes idle. server.close() closes
 * the idle ones once, when it begins; one whose request was in flight then (or whose answer went out
 * before its body had all arrived) would stay open after it, holding the close for the server's
 * keep-alive timeout (75 s by default). A `Connection: close` header on answers sent while closing
 * is not enough: it misses answers already sent, and Node drops the answers to requests pipelined
 * behind it, requests that were already taken. closeIdleConnections() leaves a connection alone
 * while a request on it is being read or answered.
 */
export function closeConnectionsWhileClosing(app: FastifyInstance): void {
  app.addHook('preClose', (done) => {
    const server = app.server;
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    sweep.unref();
    server.once('close', () => clearInterval(sweep));
    done();
  });
}
