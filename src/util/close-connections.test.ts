import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify from 'fastify';
import { closeConnectionsWhileClosing } from './close-connections.ts';

describe('closeConnectionsWhileClosing', () => {
  it('lets a large answer made while closing reach a slow reader before closing its connection', async () => {
    const body = 'x'.repeat(8 * 1024 * 1024);
    const app = Fastify();
    closeConnectionsWhileClosing(app);
    let answer: () => void = () => {};
    const answering = new Promise<void>((resolve) => (answer = resolve));
    let asked = false;
    // In flight when the close begins (as a scrape can be), answered after it.
    app.get('/big', async () => {
      asked = true;
      await answering;
      return body;
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    try {
      let received = 0;
      const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      socket.once('data', () => socket.pause()); // a slow scraper: the answer backs up in the server
      socket.write('GET /big HTTP/1.1\r\nHost: test\r\n\r\n');
      while (!asked) await sleep(10);
      const closed = app.close();
      await sleep(50);
      answer();
      while (received === 0) await sleep(10);
      await sleep(350); // several sweeps while the answer is still being written
      socket.resume();
      await closed;
      await Promise.race([ended, sleep(5000)]);
      assert.ok(received > body.length, `the whole answer arrived (${received} bytes of ${body.length}+)`);
    } finally {
      socket.destroy();
    }
  });

  it('sweeps nothing for an app that never listened', async (t) => {
    const server = createServer();
    const app = Fastify({ serverFactory: (handler) => server.on('request', handler) });
    closeConnectionsWhileClosing(app);
    await app.ready();
    const sweeps = t.mock.method(server, 'closeIdleConnections');
    await app.close();
    await sleep(250);
    assert.equal(sweeps.mock.callCount(), 0);
  });
});
