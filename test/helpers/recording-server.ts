import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  connect as netConnect,
  createServer as createNetServer,
  type AddressInfo,
  type Socket,
} from 'node:net';
import type { TLSSocket } from 'node:tls';
import { gunzipSync, inflateSync } from 'node:zlib';

/**
 * A local HTTP(S) server for tests that records every request byte for byte and answers each one as
 * scripted: a status/headers/body (optionally after a delay), hang until closed, or drop the connection.
 *
 *   const server = await startRecordingServer();
 *   server.respondWith((req, i) => (i % 2 === 0 ? { status: 503, headers: { 'retry-after': '1' } } : {}));
 *   ... send to server.url ...
 *   await server.waitFor(4);
 *   server.requests[0].text; server.connections; await server.close();
 */

export interface RecordedRequest {
  /** 0-based arrival order. */
  index: number;
  method: string;
  /** Request target as sent (`/path?query`, or an absolute URL when sent to a proxy). */
  url: string;
  /** Lower-cased header map (Node's). */
  headers: IncomingHttpHeaders;
  /** Header names and values exactly as received, alternating. */
  rawHeaders: string[];
  /** Body bytes as received. */
  body: Buffer;
  /** Body after Content-Encoding gzip/deflate is undone (= body otherwise). */
  decoded: Buffer;
  /** `decoded` as UTF-8. */
  text: string;
  /** Which connection the request came on (1-based, in accept order). */
  connection: number;
  /** TLS: whether the client certificate was verified, and its subject CN. */
  tls?: { authorized: boolean; clientCertCN?: string };
}

export type Script =
  | {
      status?: number;
      headers?: Record<string, string | string[]>;
      body?: string | Buffer;
      /** Wait this long (ms) before answering. */
      delayMs?: number;
    }
  /** Never answer; the request stays open until the server closes. */
  | { hang: true }
  /** Drop the connection with a TCP RST (ECONNRESET on the client). */
  | { reset: true }
  /** Close the connection without answering (FIN: "other side closed"). */
  | { destroy: true };

export type Responder = (req: RecordedRequest, index: number) => Script | Promise<Script>;

export interface RecordingServerOptions {
  /** Loopback address to listen on; default 127.0.0.1 (127.0.0.2 gives a second host name). */
  host?: string;
  /** Port to listen on; default any free one (a server on another `host` at the same port: a moved address). */
  port?: number;
  tls?: {
    cert: string | Buffer;
    key: string | Buffer;
    /** CA for client certificates. */
    ca?: string | Buffer;
    /** Ask for a client certificate, refusing connections without a valid one (mTLS). */
    requestCert?: boolean;
  };
}

export interface RecordingServer {
  /** Base URL, `http://127.0.0.1:PORT/` (or https, or the `host` option's address). */
  url: string;
  port: number;
  server: Server;
  readonly requests: RecordedRequest[];
  /** Connections accepted so far. */
  readonly connections: number;
  /** Sets how each following request is answered; default: 200 with an empty body. */
  respondWith(fn: Responder): void;
  /** Resolves once `n` requests have been recorded (rejects after timeoutMs, default 5000). */
  waitFor(n: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Forgets recorded requests (the connection count is kept). */
  reset(): void;
  /** Closes the server and every open connection (hanging requests included). */
  close(): Promise<void>;
}

function decode(body: Buffer, encoding: string | undefined): Buffer {
  const value = (encoding ?? '').trim().toLowerCase();
  try {
    if (value === 'gzip' || value === 'x-gzip') return gunzipSync(body);
    if (value === 'deflate') return inflateSync(body);
  } catch {
    return body;
  }
  return body;
}

export async function startRecordingServer(options: RecordingServerOptions = {}): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const connectionIds = new WeakMap<Socket, number>();
  const waiters: { n: number; resolve: () => void }[] = [];
  let connections = 0;
  let responder: Responder = () => ({});
  let closing = false;

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const decoded = decode(body, req.headers['content-encoding']);
      const socket = req.socket;
      const recorded: RecordedRequest = {
        index: requests.length,
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
        decoded,
        text: decoded.toString('utf8'),
        connection: connectionIds.get(socket) ?? 0,
      };
      if ('encrypted' in socket) {
        const tlsSocket = socket as TLSSocket;
        const cert = tlsSocket.getPeerCertificate();
        const cn = cert.subject?.CN;
        recorded.tls = {
          authorized: tlsSocket.authorized,
          ...(typeof cn === 'string' ? { clientCertCN: cn } : {}),
        };
      }
      requests.push(recorded);
      for (const w of waiters.filter((w) => requests.length >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      void Promise.resolve(responder(recorded, recorded.index)).then(
        (script) => answer(res, socket, script),
        (err: unknown) => {
          res.statusCode = 500;
          res.end(String(err));
        },
      );
    });
  };

  const answer = (res: ServerResponse, socket: Socket, script: Script) => {
    if ('hang' in script) return;
    if ('reset' in script) {
      socket.resetAndDestroy();
      return;
    }
    if ('destroy' in script) {
      socket.destroy();
      return;
    }
    const send = () => {
      if (closing || socket.destroyed) return;
      res.statusCode = script.status ?? 200;
      for (const [k, v] of Object.entries(script.headers ?? {})) res.setHeader(k, v);
      res.end(script.body ?? '');
    };
    if (script.delayMs) setTimeout(send, script.delayMs);
    else send();
  };

  const server: Server = options.tls
    ? createHttpsServer(
        {
          cert: options.tls.cert,
          key: options.tls.key,
          ...(options.tls.ca !== undefined ? { ca: options.tls.ca } : {}),
          requestCert: options.tls.requestCert ?? false,
          rejectUnauthorized: options.tls.requestCert ?? false,
        },
        handler,
      )
    : createHttpServer(handler);
  server.keepAliveTimeout = 30_000;

  const track = (socket: Socket) => {
    connections += 1;
    connectionIds.set(socket, connections);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  // 'connection' fires for the raw TCP socket; the request's socket is the TLS one for https.
  if (options.tls) server.on('secureConnection', track);
  else server.on('connection', track);
  // Raw sockets of TLS connections (including failed handshakes) are destroyed on close too.
  if (options.tls) {
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
  }
  server.on('tlsClientError', () => {});

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${port}/`,
    port,
    server,
    requests,
    get connections() {
      return connections;
    },
    respondWith(fn) {
      responder = fn;
    },
    waitFor(n, timeoutMs = 5000) {
      if (requests.length >= n) return Promise.resolve(requests);
      return new Promise<RecordedRequest[]>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(
            new Error(`recording server: waited ${timeoutMs} ms for ${n} requests, got ${requests.length}`),
          );
        }, timeoutMs);
        const waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(requests);
          },
        };
        waiters.push(waiter);
      });
    },
    reset() {
      requests.length = 0;
    },
    close() {
      closing = true;
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
      });
    },
  };
}

export interface TestProxy {
  url: string;
  /** Absolute-form request targets seen (plain-http proxying). */
  readonly requests: { method: string; url: string; headers: IncomingHttpHeaders }[];
  /** `host:port` targets of CONNECT tunnels. */
  readonly tunnels: string[];
  close(): Promise<void>;
}

/**
 * A minimal forward proxy: plain-http requests in absolute form are re-sent to their target, CONNECT
 * opens a TCP tunnel. Records both. With `tls` it is an HTTPS proxy (TLS between client and proxy).
 * With `authorization`, a request or CONNECT without that exact Proxy-Authorization gets a 407.
 */
export async function startTestProxy(
  options: {
    tls?: { cert: Buffer; key: Buffer; ca?: Buffer; requestCert?: boolean };
    authorization?: string;
  } = {},
): Promise<TestProxy> {
  const requests: TestProxy['requests'] = [];
  const tunnels: string[] = [];
  const sockets = new Set<Socket>();
  const refused = (req: IncomingMessage) =>
    options.authorization !== undefined && req.headers['proxy-authorization'] !== options.authorization;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (refused(req)) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test"' });
      res.end('proxy authentication required');
      return;
    }
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.statusCode = 400;
      res.end('absolute-form request target expected');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: Number(target.port || 80),
        method: req.method,
        path: `${target.pathname}${target.search}`,
        headers,
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.statusCode = 502;
      res.end();
    });
    req.pipe(upstream);
  };
  const tls = options.tls;
  const server = tls
    ? createHttpsServer(
        { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: tls.requestCert ?? false },
        handler,
      )
    : createHttpServer(handler);
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
    if (refused(req)) {
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const [host, port] = (req.url ?? '').split(':');
    const upstream = netConnect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    tunnels,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

export interface TestSocks5 {
  url: string;
  /** `host:port` targets of CONNECT requests. */
  readonly connects: string[];
  close(): Promise<void>;
}

/**
 * A minimal SOCKS5 proxy (RFC 1928: no authentication, CONNECT only) that records its targets.
 * Written here because a proxy server library would be a dependency for one test.
 */
export async function startTestSocks5(): Promise<TestSocks5> {
  const connects: string[] = [];
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    let buffered = Buffer.alloc(0);
    let greeted = false;
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!greeted) {
        if (buffered.length < 2 || buffered.length < 2 + buffered[1]!) return;
        buffered = buffered.subarray(2 + buffered[1]!);
        greeted = true;
        client.write(Buffer.from([5, 0])); // version 5, no authentication
      }
      if (buffered.length < 5) return;
      const type = buffered[3]!;
      const addressLength = type === 1 ? 4 : type === 4 ? 16 : 1 + buffered[4]!;
      if (buffered.length < 4 + addressLength + 2) return;
      const address = buffered.subarray(4, 4 + addressLength);
      const host =
        type === 1
          ? [...address].join('.')
          : type === 4
            ? (address.toString('hex').match(/.{4}/g) ?? []).join(':')
            : address.subarray(1).toString();
      const port = buffered.readUInt16BE(4 + addressLength);
      const rest = buffered.subarray(4 + addressLength + 2);
      client.off('data', onData);
      connects.push(`${host}:${port}`);
      const upstream = netConnect(port, host, () => {
        client.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
        if (rest.length > 0) upstream.write(rest);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => {
        client.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])); // connection refused
      });
      client.on('close', () => upstream.destroy());
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `socks5://127.0.0.1:${port}`,
    connects,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
