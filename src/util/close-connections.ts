import type { FastifyInstance } from 'fastify';

/**
 * While `app` closes, every answer ends its connection. server.close() closes the idle keep-alive
 * connections once, when it begins; one whose request was in flight then would stay open after its
 * answer, holding the close for the server's keep-alive timeout. Fastify itself only closes the
 * connections of requests that start after the close began.
 */
export function closeConnectionsWhileClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
}
