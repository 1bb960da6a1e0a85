import type { Socket } from 'node:net';
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
 * while a request on it is being read or answered, but counts an answer as done once it is ended,
 * while its bytes may still wait in the socket (a large /metrics to a slow scraper): a sweep then
 * waits until no socket has output pending.
 */
export function closeConnectionsWhileClosing(app: FastifyInstance): void {
  const server = app.server;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  server.on('connection', track);
  server.on('secureConnection', track);
  const outputPending = () => {
    for (const socket of sockets) if (socket.writableLength > 0) return true;
    return false;
  };
  app.addHook('preClose', (done) => {
    // Never listened (its listen failed): no connections, and no 'close' event to stop a sweep.
    if (!server.listening) return done();
    const sweep = setInterval(() => {
      if (!outputPending()) server.closeIdleConnections();
    }, IDLE_SWEEP_MS);
    sweep.unref();
    server.once('close', () => clearInterval(sweep));
    done();
  });
}
