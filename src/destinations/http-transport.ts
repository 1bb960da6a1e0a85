import dns from 'node:dns';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import * as nodeTls from 'node:tls';
import { createGunzip, gzip as gzipCallback } from 'node:zlib';
import { promisify } from 'node:util';
import { Agent, buildConnector, Dispatcher, Pool, ProxyAgent, request as undiciRequest } from 'undici';
import type { RequestConfig } from '../config/types.ts';
import { HttpStatusError, parseRetryAfter } from '../delivery/errors.ts';
import { DestinationSettingError } from '../config/errors.ts';
import { errorCode } from '../util/error.ts';
import { timerDelay } from '../util/timer.ts';
import { proxyFromEnvironment, withoutCredentials, type ProxyFunc } from './proxy-from-env.ts';
import { CERTIFICATE_CHECK_INTERVAL_MS, watchFiles } from '../util/file-watch.ts';
import type { Logger } from 'pino';

/**
 * The one HTTP client layer every HTTP-based destination uses.
 *
 * - One undici dispatcher per destination: pooled keep-alive connections, HTTP/1.1. Once it has sent,
 *   the base URL's host name is resolved again every 30 s; when its addresses change, new connections
 *   go to the new ones and the pooled ones close after their sends (see watchAddresses).
 * - `request.connect_timeout` bounds TCP connect + TLS handshake; `request.timeout` is a deadline for the
 *   whole exchange (connect, send, response headers and body, redirects). 0 disables either.
 * - TLS: `tls.verify: false` accepts any server certificate; `tls.ca_file` is trusted in addition to
 *   Node's default store (its roots and NODE_EXTRA_CA_CERTS); `tls.cert_file` + `tls.key_file` are presented as a client certificate (mTLS).
 *   Files are read, and the certificate/key checked, when the transport is created, and again when
 *   they change (checked every minute): new connections use the new ones, a pair that cannot be used
 *   keeps the old.
 * - Proxy: `request.proxy` if set; otherwise HTTP_PROXY / HTTPS_PROXY / NO_PROXY with the rules of
 *   Go's ProxyFromEnvironment (Falcosidekick's), see proxy-from-env.ts. As in Go, plain-http targets
 *   are sent to an http(s) proxy in absolute form, https targets go through a CONNECT tunnel, and an
 *   https proxy is verified with the destination's TLS settings.
 * - Credentials in the base URL (`https://user:pass@host/`) are sent as basic auth when `request.auth`
 *   sets none, as Go's client does.
 * - Headers, later ones winning (names compared case-insensitively, sent in Go's canonical form
 *   `X-Custom-Header` like Falcosidekick): User-Agent, Content-Type, Accept-Encoding: gzip,
 *   Content-Encoding, Authorization (basic or bearer from `request.auth`), then `request.headers`,
 *   then the per-call headers. `Host` and `Content-Length` among them are ignored, as Go's client
 *   ignores them; Transfer-Encoding, Keep-Alive, Upgrade and Expect are refused at creation.
 * - `request.gzip` gzips the body. A gzip response body is decoded (Go's transport does the same), at
 *   most as many bytes as are kept of it.
 * - Any 2xx resolves. Any other status throws HttpStatusError (with `Retry-After` parsed). A 307 or
 *   308 is followed as Go's client follows it (up to 10 requests, the same method and body,
 *   credentials kept only for the first host or its subdomains); 301, 302 and 303 are not (see
 *   redirectTarget). Network errors (undici errors with their `code`) propagate; a certificate TLS
 *   refused is explained (host, remedy), and a 2xx whose body breaks off says so. It never retries:
 *   the delivery engine classifies and retries.
 */

export interface HttpTransportOptions {
  /** Destination name, used in error messages. */
  name: string;
  /** Endpoint every relative `path` is appended to. http: or https:. */
  baseUrl: string;
  /** The option `baseUrl` comes from, for errors (default `address`). */
  baseUrlKey?: string;
  /** Connections per origin; default unlimited (the delivery engine bounds concurrency). */
  connections?: number;
  /** Default User-Agent; `Eyrie` when not given. */
  userAgent?: string;
  /** Where a reload of the TLS files (see below) is reported; silent when not given. */
  logger?: Logger;
  /** How often the TLS files are checked for a new version (ms; tests lower it). */
  certificateCheckInterval?: number;
  /** How often the base URL's host name is resolved again (ms; tests lower it). */
  addressCheckInterval?: number;
}

export interface HttpSendRequest {
  /** Default POST. */
  method?: string;
  /** Appended to the base URL's path (query strings are merged), or an absolute http(s) URL. */
  path?: string;
  headers?: Record<string, string>;
  body: string | Buffer;
  /** Content-Type of the body; default `application/json; charset=utf-8`. */
  contentType?: string;
  /** Most of an error answer's body kept in HttpStatusError, for a caller that reads it; default 4 KiB. */
  errorBodyLimit?: number;
  /** A shorter deadline (ms) than `request.timeout`, for a caller with less time left; never a longer one. */
  timeout?: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Decoded (gunzipped) response text, at most RESPONSE_LIMIT bytes. */
  body: string;
}

export interface HttpTransport {
  readonly baseUrl: URL;
  send(req: HttpSendRequest): Promise<HttpResponse>;
  /** Destroys the connection pool; in-flight requests fail. */
  close(): Promise<void>;
}

export const DEFAULT_CONTENT_TYPE = 'application/json; charset=utf-8';
/** Most of a response body kept (success bodies are small; error bodies are only quoted). */
export const RESPONSE_LIMIT = 1024 * 1024;
/** Most of an error response body carried in HttpStatusError. */
const ERROR_BODY_LIMIT = 4096;

const gzip = promisify(gzipCallback);

/** Header names come from configs and destination code: a few dozen per process. */
const canonicalNames = new Map<string, string>();
const CANONICAL_CACHE_LIMIT = 1024;

/** Go's textproto.CanonicalMIMEHeaderKey: `x-api-key` → `X-Api-Key`; names with odd characters unchanged. */
export function canonicalHeaderName(name: string): string {
  // Cached: the regular expressions cost about 1 µs per name, and every request sets several.
  let canonical = canonicalNames.get(name);
  if (canonical !== undefined) return canonical;
  canonical = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)
    ? name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, sep: string, c: string) => sep + c.toUpperCase())
    : name;
  if (canonicalNames.size < CANONICAL_CACHE_LIMIT) canonicalNames.set(name, canonical);
  return canonical;
}

/** Headers undici manages itself and refuses from a caller: refused at start, not at every send. */
const UNSENDABLE_HEADERS = new Set(['transfer-encoding', 'keep-alive', 'upgrade', 'expect']);
/** Set from the URL and the body whatever a configured header says, as Go's client does. */
const IGNORED_HEADERS = new Set(['host', 'content-length']);

/** Refuses configured headers (at `key`, e.g. `request.headers`) that could never be sent. */
export function checkHeaders(destination: string, key: string, headers: Record<string, string>): void {
  for (const header of Object.keys(headers)) {
    if (UNSENDABLE_HEADERS.has(header.toLowerCase())) {
      throw new DestinationSettingError(
        destination,
        `${key}.${header}`,
        `a ${canonicalHeaderName(header)} header cannot be configured: the HTTP client sets it itself`,
      );
    }
  }
}

/** Ordered, case-insensitive header set; later `set` wins. */
class HeaderSet {
  private readonly map = new Map<string, [string, string]>();
  set(name: string, value: string): void {
    this.map.set(name.toLowerCase(), [canonicalHeaderName(name), value]);
  }
  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }
  delete(name: string): void {
    this.map.delete(name.toLowerCase());
  }
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of this.map.values()) out[name] = value;
    return out;
  }
}

function readConfigFile(destination: string, key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DestinationSettingError(
      destination,
      `request.tls.${key}`,
      `cannot read "${path}": ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/**
 * What Node trusts when no `ca` is given: its bundled roots plus NODE_EXTRA_CA_CERTS, which operators
 * use for a private CA (Go reads the system pool; Node does not). `tls.getCACertificates` (Node ≥ 22.15)
 * says so itself; on Node 20 the extra file is read here (Node already warned at start if it cannot be).
 */
function defaultCertificates(): (string | Buffer)[] {
  const tls = nodeTls as typeof nodeTls & { getCACertificates?: (type: 'default') => string[] };
  if (typeof tls.getCACertificates === 'function') return [...tls.getCACertificates('default')];
  const certificates: (string | Buffer)[] = [...nodeTls.rootCertificates];
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      certificates.push(readFileSync(extra));
    } catch {
      // Node reports an unreadable NODE_EXTRA_CA_CERTS itself.
    }
  }
  return certificates;
}

interface TlsOptions {
  rejectUnauthorized: boolean;
  ca?: (string | Buffer)[];
  cert?: Buffer;
  key?: Buffer;
}

function tlsOptions(name: string, tls: RequestConfig['tls']): TlsOptions {
  const options: TlsOptions = { rejectUnauthorized: tls.verify };
  // Each with its own key, `ca_file[1]`, so a problem is located at the entry that names that file.
  const caFiles: [key: string, file: string][] = (
    typeof tls.ca_file === 'string'
      ? [['ca_file', tls.ca_file] as [string, string]]
      : tls.ca_file.map((file, i): [string, string] => [`ca_file[${i}]`, file])
  ).filter(([, file]) => file !== '');
  if (caFiles.length > 0) {
    // `ca` replaces Node's default store, so keep it and add the files' certificates.
    options.ca = defaultCertificates();
    for (const [key, file] of caFiles) {
      const ca = readConfigFile(name, key, file);
      let problem = ca.includes('-----BEGIN CERTIFICATE-----') ? '' : 'no "BEGIN CERTIFICATE" block';
      if (problem === '') {
        try {
          nodeTls.createSecureContext({ ca });
        } catch (err) {
          problem = (err as Error).message;
        }
      }
      if (problem !== '') {
        throw new DestinationSettingError(
          name,
          `request.tls.${key}`,
          `"${file}" holds no usable PEM certificate: ${problem}`,
        );
      }
      options.ca.push(ca);
    }
  }
  if (tls.cert_file || tls.key_file) {
    if (!tls.cert_file || !tls.key_file) {
      throw new DestinationSettingError(
        name,
        tls.cert_file ? 'request.tls.key_file' : 'request.tls.cert_file',
        'request.tls.cert_file and request.tls.key_file must be set together (mutual TLS)',
      );
    }
    options.cert = readConfigFile(name, 'cert_file', tls.cert_file);
    options.key = readConfigFile(name, 'key_file', tls.key_file);
    try {
      nodeTls.createSecureContext({ cert: options.cert, key: options.key });
    } catch (err) {
      throw new DestinationSettingError(
        name,
        'request.tls.cert_file',
        `client certificate "${tls.cert_file}" / key "${tls.key_file}" cannot be used: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  return options;
}

/**
 * Calls `reload` when the CA, client certificate or key files change (renewed by cert-manager or a
 * Vault agent while Eyrie runs: Falcosidekick would present the expired one until restarted).
 */
function watchTlsFiles(
  tls: RequestConfig['tls'],
  options: HttpTransportOptions,
  reload: () => void,
): () => void {
  const files = [
    ...(typeof tls.ca_file === 'string' ? [tls.ca_file] : tls.ca_file),
    tls.cert_file,
    tls.key_file,
  ];
  const named = files.filter((f) => f !== '');
  if (named.length === 0) return () => {};
  return watchFiles(named, options.certificateCheckInterval ?? CERTIFICATE_CHECK_INTERVAL_MS, reload);
}

/** How often a destination's host name is resolved again: CoreDNS caches an answer 30 s. */
export const ADDRESS_CHECK_INTERVAL_MS = 30_000;

/**
 * Calls `onChange` when the addresses `host` resolves to change (a Service's pods rolled, a failover
 * flipped its record). A connection resolves its name only when it opens, and undici keeps a
 * kept-alive one for as long as sends reuse it: under steady traffic a destination stayed on the
 * old address for good, even once another server answered there. A lookup that fails changes
 * nothing (CoreDNS restarting must not drop connections that work); an IP address is not watched.
 * Returns a function that stops the checks. The timer does not keep the process alive.
 */
function watchAddresses(
  host: string,
  intervalMs: number,
  onChange: (before: readonly string[], after: readonly string[]) => void,
): () => void {
  const name = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(name) !== 0) return () => {};
  let known: string[] | undefined;
  let looking = false;
  const check = () => {
    if (looking) return;
    looking = true;
    // Through the module object, as net.connect calls it: the same resolver the connections use.
    dns.lookup(name, { all: true }, (err, addresses) => {
      looking = false;
      if (err !== null || addresses.length === 0) return;
      const now = addresses.map((a) => a.address).sort();
      if (known !== undefined && now.join() !== known.join()) onChange(known, now);
      known = now;
    });
  };
  check();
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

const PROXY_PROTOCOLS = ['http:', 'https:', 'socks5:', 'socks:'];

/** Basic credentials for an http(s) proxy from its URL: sent whenever it names a user, as Go does. */
function proxyAuthorization(proxy: URL): string | undefined {
  if (proxy.username === '') return undefined;
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return `Basic ${Buffer.from(credentials).toString('base64')}`;
}

interface DispatcherOptions {
  connect: TlsOptions & { timeout: number };
  connections?: number;
  headersTimeout: number;
  bodyTimeout: number;
}

function dispatcherOptions(
  name: string,
  request: RequestConfig,
  connections: number | undefined,
): DispatcherOptions {
  return {
    connect: { ...tlsOptions(name, request.tls), timeout: request.connect_timeout },
    ...(connections !== undefined ? { connections } : {}),
    // Backstops behind the whole-request deadline (0 disables them).
    headersTimeout: request.timeout,
    bodyTimeout: request.timeout,
  };
}

/** The proxy for each request URL: `request.proxy` for all when set, else Go's environment rules. */
function proxyChooser(name: string, configured: string): ProxyFunc {
  if (configured === '') {
    const fromEnvironment = proxyFromEnvironment(process.env);
    return (url) => {
      try {
        return fromEnvironment(url);
      } catch (err) {
        throw new Error(`destination "${name}": ${(err as Error).message}`, { cause: err });
      }
    };
  }
  let proxyUrl: URL;
  try {
    proxyUrl = new URL(configured);
  } catch {
    throw new DestinationSettingError(
      name,
      'request.proxy',
      `"${withoutCredentials(configured)}" is not a URL`,
    );
  }
  return () => proxyUrl;
}

function buildDispatcher(
  name: string,
  options: DispatcherOptions,
  proxy: URL | undefined,
  fromEnv: boolean,
): Dispatcher {
  if (proxy === undefined) return new Agent(options);
  if (!PROXY_PROTOCOLS.includes(proxy.protocol)) {
    const must = 'must be an http://, https:// or socks5:// URL';
    if (!fromEnv) throw new DestinationSettingError(name, 'request.proxy', must);
    throw new Error(
      `destination "${name}": proxy "${proxy.protocol}//${proxy.host}" from the environment ${must}`,
    );
  }
  const isSocks = proxy.protocol === 'socks5:' || proxy.protocol === 'socks:';
  // Go's transport uses its TLS config for an https proxy too: same CA, client cert and checkcert.
  // undici speaks TLS to a SOCKS proxy whenever proxyTls is set, so a socks5:// proxy gets none.
  const proxyTls = proxy.protocol === 'https:' ? options.connect : { timeout: options.connect.timeout };
  // undici sends the URL's credentials on CONNECT only with a password; Go does with a user alone.
  const token = isSocks ? undefined : proxyAuthorization(proxy);
  const tunnel = new ProxyAgent({
    ...options,
    uri: proxy.href,
    requestTls: options.connect,
    ...(isSocks ? {} : { proxyTls }),
    ...(token === undefined ? {} : { token }),
  });
  if (isSocks) return tunnel;
  // undici derives a request's TLS server name from its Host header, which in absolute form names the
  // target; the connection is to the proxy, so its own name is used (the connector's default).
  const connector = buildConnector(proxyTls);
  const pool = new Pool(proxy.origin, {
    ...options,
    connect: (opts, callback) => connector({ ...opts, servername: undefined }, callback),
  });
  return new AbsoluteFormProxy(proxy, pool, tunnel);
}

/**
 * Sends plain-http requests to an http(s) proxy in absolute form (`POST http://host/path`), as Go's
 * transport does, and the rest through `tunnel` (CONNECT). undici's ProxyAgent does the former only
 * for an http:// proxy and tunnels them through an https:// one, which proxies that allow CONNECT
 * only to port 443 refuse. A 407 from the proxy is an ordinary answer here, as in Go.
 */
class AbsoluteFormProxy extends Dispatcher {
  readonly #pool: Pool;
  readonly #tunnel: ProxyAgent;
  readonly #authorization: string | undefined;

  constructor(proxy: URL, pool: Pool, tunnel: ProxyAgent) {
    super();
    this.#pool = pool;
    this.#tunnel = tunnel;
    this.#authorization = proxyAuthorization(proxy);
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(options.origin ?? '');
    if (!origin.startsWith('http:')) return this.#tunnel.dispatch(options, handler);
    const target = new URL(origin);
    // The send path always passes a plain header object.
    const headers: Record<string, string | string[] | undefined> = {
      host: target.host,
      ...(options.headers as Record<string, string | string[] | undefined> | null | undefined),
    };
    if (this.#authorization !== undefined) headers['proxy-authorization'] = this.#authorization;
    // A constant server name (undici's Request reads it, its types omit it) keeps undici from
    // reconnecting whenever the target host changes; the connector ignores it.
    const path = `${target.origin}${options.path}`;
    const proxied = { ...options, path, headers, servername: 'proxy' } as Dispatcher.DispatchOptions;
    return this.#pool.dispatch(proxied, handler);
  }

  override async close(): Promise<void> {
    await Promise.all([this.#pool.close(), this.#tunnel.close()]);
  }

  override async destroy(): Promise<void> {
    await Promise.all([this.#pool.destroy(), this.#tunnel.destroy()]);
  }
}

function resolveUrl(base: URL, path: string | undefined): URL {
  if (path === undefined || path === '') return base; // never modified: undici only reads it
  if (/^https?:\/\//i.test(path)) return new URL(path);
  const q = path.indexOf('?');
  const pathPart = q === -1 ? path : path.slice(0, q);
  const query = q === -1 ? '' : path.slice(q + 1);
  const url = new URL(base.href);
  if (pathPart !== '') url.pathname = `${base.pathname.replace(/\/+$/, '')}/${pathPart.replace(/^\/+/, '')}`;
  if (query !== '') url.search = base.search === '' ? `?${query}` : `${base.search}&${query}`;
  return url;
}

/** A body read: the bytes kept, and the error that broke it off (the connection closed after the status). */
interface BodyRead {
  raw: Buffer;
  broken?: Error;
}

/**
 * Reads at most `limit` bytes of a response body; a longer body is cut there and its connection
 * dropped rather than drained. Listens for 'data' rather than iterating with `for await`, which costs
 * a promise per chunk on every delivery. A body that breaks off resolves with what came before it:
 * the status already says what the receiver made of the request.
 */
function readBody(body: Dispatcher.ResponseData['body'], limit: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      body.off('data', onData);
      body.off('end', done);
      body.off('error', onError);
      resolve({ raw: Buffer.concat(chunks, size) });
    };
    const onError = (err: Error) => {
      body.off('data', onData);
      body.off('end', done);
      resolve({ raw: Buffer.concat(chunks, size), broken: err });
    };
    const onData = (chunk: Buffer) => {
      const remaining = limit - size;
      if (chunk.length < remaining) {
        chunks.push(chunk);
        size += chunk.length;
        return;
      }
      chunks.push(chunk.subarray(0, remaining));
      size = limit;
      done();
      body.on('error', () => {}); // the destroy below may report an abort: nobody waits for it
      body.destroy();
    };
    body.on('data', onData);
    body.once('end', done);
    body.once('error', onError);
  });
}

/**
 * At most `limit` bytes of a gzip body, decoded: a small body can inflate to gigabytes. What was
 * decoded before an error (a body cut at the read limit) is kept; undefined if nothing was.
 */
function gunzipAtMost(raw: Buffer, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const inflate = createGunzip();
    const finish = (complete: boolean) => {
      if (settled) return;
      settled = true;
      inflate.destroy();
      resolve(size > 0 || complete ? Buffer.concat(chunks, size) : undefined);
    };
    inflate.on('data', (chunk: Buffer) => {
      if (settled) return;
      const take = Math.min(chunk.length, limit - size);
      chunks.push(chunk.subarray(0, take));
      size += take;
      if (size >= limit) finish(true);
    });
    inflate.on('end', () => finish(true));
    inflate.on('error', () => finish(false));
    inflate.end(raw);
  });
}

async function decodeBody(
  raw: Buffer,
  encoding: string | string[] | undefined,
  limit: number,
): Promise<string> {
  const value = (Array.isArray(encoding) ? encoding.join(',') : (encoding ?? '')).trim().toLowerCase();
  if (raw.length > 0 && (value === 'gzip' || value === 'x-gzip')) {
    const decoded = await gunzipAtMost(raw, limit);
    return decoded === undefined ? raw.toString('latin1') : decoded.toString('utf8');
  }
  return raw.toString('utf8');
}

/**
 * The receiver answered a 2xx, then the connection closed before the end of its body. Keeps the
 * network error's code (`UND_ERR_SOCKET`, `ECONNRESET`…), so it is classified and counted as that
 * network error: retried.
 */
class ResponseBrokenError extends Error {
  readonly code: string | undefined;
  constructor(host: string, status: number, cause: Error) {
    super(
      `${host} answered HTTP ${status}, then the connection broke before the end of its body (${cause.message})`,
      { cause },
    );
    this.name = 'ResponseBrokenError';
    this.code = errorCode(cause);
  }
}

/** What to do about a receiver's certificate that TLS verification refused, by Node's error code. */
const CERTIFICATE_PROBLEMS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'has expired: renew it on the receiver',
  CERT_NOT_YET_VALID: 'is not valid yet: check the clocks of both hosts',
  ERR_TLS_CERT_ALTNAME_INVALID:
    'is for another host name: use a name it holds in the URL, or fix the certificate',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'is not trusted: name its CA in request.tls.ca_file (or NODE_EXTRA_CA_CERTS)',
  SELF_SIGNED_CERT_IN_CHAIN: 'is not trusted: name its CA in request.tls.ca_file (or NODE_EXTRA_CA_CERTS)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    'is not trusted: name its CA in request.tls.ca_file (or NODE_EXTRA_CA_CERTS), or have the receiver send its intermediate certificates',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    'is not trusted: name its CA in request.tls.ca_file (or NODE_EXTRA_CA_CERTS)',
};

/**
 * Node's certificate errors ("certificate has expired", "self-signed certificate") and undici's
 * "other side closed" name neither the server nor the remedy, and are all an operator sees in the
 * log, /healthz and dead letters. Says whose certificate it is and what to do, or which server
 * dropped the connection, keeping the code (the metrics' reason). Other errors pass unchanged.
 */
function explainNetworkError(err: unknown, url: URL, proxyFor: ProxyFunc): unknown {
  const code = errorCode(err);
  if (!(err instanceof Error) || code === undefined || err instanceof ResponseBrokenError) return err;
  // A name with both IPv4 and IPv6 addresses (`localhost` on most hosts, a dual-stack Service) is
  // tried address by address (happy eyeballs); when every attempt fails, Node throws an
  // AggregateError whose message is empty, which the log, /healthz and dead letters would show.
  if (err instanceof AggregateError && err.message === '') {
    const attempts = err.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e)));
    const explained = new Error(`cannot connect to ${url.host}: ${attempts.join('; ')}`, { cause: err });
    return Object.assign(explained, { code });
  }
  // undici's "other side closed" names no host; a body cut after the status is ResponseBrokenError.
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') {
    const explained = new Error(`no answer from ${url.host}: the connection broke (${err.message})`, {
      cause: err,
    });
    return Object.assign(explained, { code });
  }
  const problem = CERTIFICATE_PROBLEMS[code];
  if (problem === undefined) return err;
  let proxy: URL | undefined;
  try {
    proxy = proxyFor(url);
  } catch {
    proxy = undefined;
  }
  // Through a proxy, the certificate refused may be the proxy's own (an https:// proxy).
  const whose = proxy === undefined ? url.host : `${url.host} or of the proxy ${proxy.host}`;
  const explained = new Error(`TLS: the certificate of ${whose} ${problem} (${err.message})`, {
    cause: err,
  });
  return Object.assign(explained, { code });
}

/** The statuses Go's client treats as redirects. */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Requests one send may make, redirects included: Go's client stops after 10. */
const MAX_REQUESTS = 10;

/**
 * Where a non-2xx answer sends the request next, as Go's client decides for Falcosidekick: 307 and 308
 * repeat the request (method and body) at their Location. Otherwise a string: why the answer is the
 * final one ('' when it simply is). Written here rather than with undici's redirect interceptor, which
 * follows 301, 302 and 303 by turning the POST into a GET without the event (Go does the same, and the
 * receiver's 200 to that GET would count a lost alert as delivered), and which would send every hop
 * through the first hop's proxy choice.
 */
function redirectTarget(
  url: URL,
  status: number,
  location: string | string[] | undefined,
  method: string,
  requests: number,
): URL | string {
  if (!REDIRECT_STATUSES.has(status)) return '';
  const to = Array.isArray(location) ? location[0] : location;
  if (to === undefined || to === '') return ''; // answered as it stands, as in Go
  let next: URL;
  try {
    next = new URL(to, url);
  } catch {
    return `redirect to an unusable Location "${withoutCredentials(to)}"`;
  }
  const shown = withoutCredentials(next.href);
  if (status !== 307 && status !== 308) {
    return `redirect to ${shown} not followed: it would repeat the ${method} as a GET without the event`;
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    return `redirect to ${shown} not followed: not an http(s) URL`;
  }
  if (requests >= MAX_REQUESTS) return `stopped after ${MAX_REQUESTS} redirects (the last to ${shown})`;
  next.username = '';
  next.password = '';
  return next;
}

/** Headers Go's client drops on a redirect to another host, for good once dropped. */
const SENSITIVE_HEADERS = [
  'Authorization',
  'Www-Authenticate',
  'Cookie',
  'Cookie2',
  'Proxy-Authorization',
  'Proxy-Authenticate',
];

/** Go's rule for keeping credentials across a redirect: the first URL's host name or a subdomain of it. */
function sameHostOrSubdomain(next: URL, first: URL): boolean {
  const to = next.hostname;
  const from = first.hostname;
  if (to === from) return true;
  return !/[:%]/.test(to) && to.endsWith(`.${from}`);
}

/** undici's error when a proxy answers CONNECT with anything but 200: its status, or undefined. */
function tunnelRefusal(err: unknown): number | undefined {
  if (!(err instanceof Error) || (err as Error & { code?: unknown }).code !== 'UND_ERR_ABORTED')
    return undefined;
  const match = /^Proxy response \((\d{3})\) !== 200 when HTTP Tunneling/.exec(err.message);
  return match ? Number(match[1]) : undefined;
}

/**
 * A deadline for one request, aborting it with an error that says what timed out.
 *
 * undici takes an EventEmitter with `aborted` and `reason` as its signal, as well as an AbortSignal.
 * An AbortController (an EventTarget) cost about 8 µs per request in creation and listener
 * bookkeeping against under 1 µs for this, on a path that runs once per delivered event.
 */
class Deadline extends EventEmitter {
  aborted = false;
  reason: Error | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  constructor(ms: number, what: string) {
    super();
    if (ms > 0) {
      this.timer = setTimeout(() => {
        const err = new Error(`${what} timed out after ${ms} ms`);
        err.name = 'TimeoutError';
        (err as Error & { code: string }).code = 'ETIMEDOUT';
        this.aborted = true;
        this.reason = err;
        this.emit('abort');
      }, timerDelay(ms));
    }
  }
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

export function createHttpTransport(request: RequestConfig, options: HttpTransportOptions): HttpTransport {
  const { name } = options;
  const urlKey = options.baseUrlKey ?? 'address';
  let baseUrl: URL;
  try {
    baseUrl = new URL(options.baseUrl);
  } catch {
    throw new DestinationSettingError(
      name,
      urlKey,
      `"${withoutCredentials(options.baseUrl)}" is not a valid URL`,
    );
  }
  if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
    throw new DestinationSettingError(
      name,
      urlKey,
      `"${withoutCredentials(options.baseUrl)}" must be an http:// or https:// URL`,
    );
  }
  checkHeaders(name, 'request.headers', request.headers);
  const { username, password, bearer_token: bearer } = request.auth;
  if (bearer && (username || password)) {
    throw new DestinationSettingError(
      name,
      'request.auth.bearer_token',
      'set request.auth.bearer_token or request.auth.username/password, not both',
    );
  }
  let authorization: string | undefined;
  if (bearer) authorization = `Bearer ${bearer}`;
  else if (username || password)
    authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  else if (baseUrl.username || baseUrl.password) {
    // Like Go's client: credentials in the URL are sent as basic auth.
    const user = decodeURIComponent(baseUrl.username);
    const pass = decodeURIComponent(baseUrl.password);
    authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }
  baseUrl.username = '';
  baseUrl.password = '';

  let dispatcherOpts = dispatcherOptions(name, request, options.connections);
  const proxyFor = proxyChooser(name, request.proxy);
  // One dispatcher per proxy ('' = direct): the base URL's, and any an absolute `path` needs.
  const dispatchers = new Map<string, Dispatcher>();
  const dispatcherFor = (url: URL): Dispatcher => {
    const proxy = proxyFor(url);
    const key = proxy?.href ?? '';
    let dispatcher = dispatchers.get(key);
    if (dispatcher === undefined) {
      dispatcher = buildDispatcher(name, dispatcherOpts, proxy, request.proxy === '');
      dispatchers.set(key, dispatcher);
    }
    return dispatcher;
  };
  let dispatcher = dispatcherFor(baseUrl);
  const userAgent = options.userAgent ?? 'Eyrie';
  let closed = false;
  /** New connections from here on use a new pool; the pooled ones finish what they send, then close. */
  const renewConnections = () => {
    const old = [...dispatchers.values()];
    dispatchers.clear();
    dispatcher = dispatcherFor(baseUrl);
    void Promise.allSettled(old.map((d) => d.close()));
  };
  const stopWatching = watchTlsFiles(request.tls, options, () => {
    let renewed: DispatcherOptions;
    try {
      renewed = dispatcherOptions(name, request, options.connections);
    } catch (err) {
      options.logger?.warn(
        { error: (err as Error).message },
        'request.tls: the certificate files changed but cannot be used; new connections keep the ones read before (read again when they change)',
      );
      return;
    }
    // New connections from here on present and trust the new files; the pooled ones (already
    // authenticated) finish what they send, then close.
    dispatcherOpts = renewed;
    renewConnections();
    options.logger?.info('request.tls: the certificate files changed; new connections use the new ones');
  });
  // Started by the first send, when connections are opened (`eyrie check` builds transports and
  // sends nothing: a lookup in progress would hold its exit). Through a proxy, the connections are
  // to the proxy, which resolves the destination's name itself.
  let stopWatchingAddresses: (() => void) | undefined;
  const watchBaseAddresses = (): (() => void) =>
    proxyFor(baseUrl) !== undefined
      ? () => {}
      : watchAddresses(
          baseUrl.hostname,
          options.addressCheckInterval ?? ADDRESS_CHECK_INTERVAL_MS,
          (before, after) => {
            if (closed) return;
            renewConnections();
            // A name whose answer rotates among healthy addresses (S3, load balancers) changes at
            // every check: said at info only when no address stays (a failover, a move).
            const stayed = after.some((address) => before.includes(address));
            options.logger?.[stayed ? 'debug' : 'info'](
              { host: baseUrl.hostname, before: before.join(', '), after: after.join(', ') },
              'the address of the destination changed; new connections go to the new one',
            );
          },
        );

  return {
    baseUrl,
    async send(req) {
      if (closed) throw new Error(`destination "${name}": transport is closed`);
      stopWatchingAddresses ??= watchBaseAddresses();
      let url = resolveUrl(baseUrl, req.path);
      const method = (req.method ?? 'POST').toUpperCase();
      const headers = new HeaderSet();
      headers.set('User-Agent', userAgent);
      headers.set('Content-Type', req.contentType ?? DEFAULT_CONTENT_TYPE);
      headers.set('Accept-Encoding', 'gzip');
      let body: string | Buffer = req.body;
      if (request.gzip) {
        body = await gzip(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
        headers.set('Content-Encoding', 'gzip');
      }
      if (authorization !== undefined) headers.set('Authorization', authorization);
      // Go's client sends the URL's host and the body's length whatever the headers say (a leftover
      // customheaders entry).
      for (const set of [request.headers, req.headers ?? {}]) {
        for (const [k, v] of Object.entries(set))
          if (!IGNORED_HEADERS.has(k.toLowerCase())) headers.set(k, v);
      }

      // One deadline for the whole exchange, redirects included, as Go's Client.Timeout.
      const deadline = new Deadline(
        req.timeout === undefined ? request.timeout : Math.min(request.timeout, req.timeout),
        `${method} ${url.origin}`,
      );
      const firstUrl = url;
      try {
        for (let requests = 1; ; requests++) {
          const res = await undiciRequest(url, {
            dispatcher:
              url === baseUrl || (url.host === baseUrl.host && url.protocol === baseUrl.protocol)
                ? dispatcher
                : dispatcherFor(url),
            method,
            headers: headers.toObject(),
            body,
            signal: deadline,
          });
          const status = res.statusCode;
          const success = status >= 200 && status < 300;
          const errorLimit = req.errorBodyLimit ?? ERROR_BODY_LIMIT;
          const limit = success ? RESPONSE_LIMIT : errorLimit;
          const { raw, broken } = await readBody(res.body, limit);
          if (broken !== undefined && (success || deadline.aborted)) {
            // A success whose answer was cut may not have been taken (an `eyrie` receiver's counts
            // are in it): retried, saying so, rather than undici's bare "other side closed", which
            // reads as a receiver that never answered.
            throw new ResponseBrokenError(url.host, status, broken);
          }
          // An error status whose body was cut is still that status (a 401 stays permanent): classified
          // by it, with the part of the body that came.
          const text = await decodeBody(raw, res.headers['content-encoding'], limit);
          // undici hands a keep-alive socket back to the pool one event-loop turn after the response
          // ends; waiting for that lets the next sequential send reuse it instead of opening another.
          await new Promise((resolve) => setImmediate(resolve));
          if (success) return { status, headers: res.headers, body: text };
          const next = redirectTarget(url, status, res.headers.location, method, requests);
          if (typeof next === 'string') {
            throw new HttpStatusError(
              status,
              next || text.slice(0, errorLimit),
              parseRetryAfter(res.headers['retry-after']),
            );
          }
          // As Go: credentials only to the first host or its subdomains, and never again once dropped.
          if (!sameHostOrSubdomain(next, firstUrl)) for (const h of SENSITIVE_HEADERS) headers.delete(h);
          url = next;
        }
      } catch (err) {
        // A deadline abort surfaces as the reason we gave it; anything else is undici's own error.
        if (deadline.aborted && err !== deadline.reason && !(err instanceof HttpStatusError)) {
          throw deadline.reason!;
        }
        // A proxy refusing the tunnel (407, 403, 502…) is its answer, classified like the same status
        // from a proxy in absolute form, not an abort.
        const refused = tunnelRefusal(err);
        if (refused !== undefined) {
          throw new HttpStatusError(refused, `the proxy refused the tunnel to ${url.host}`);
        }
        throw explainNetworkError(err, url, proxyFor);
      } finally {
        deadline.clear();
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      stopWatching();
      stopWatchingAddresses?.();
      await Promise.all([...dispatchers.values()].map((d) => d.destroy()));
    },
  };
}
