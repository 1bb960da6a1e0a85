import { BlockList, isIP } from 'node:net';
import { domainToASCII } from 'node:url';

/**
 * Go's net/http.ProxyFromEnvironment (golang.org/x/net/http/httpproxy), which Falcosidekick uses.
 * Hand-written rather than undici's EnvHttpProxyAgent, whose NO_PROXY matcher ignores CIDR entries
 * and exempts no loopback address but the ones listed, which prefers the lowercase variables, and
 * which falls back from HTTPS_PROXY to HTTP_PROXY.
 *
 * - http URLs use HTTP_PROXY, else http_proxy; https URLs use HTTPS_PROXY, else https_proxy (empty
 *   values are skipped). A value without a scheme (`proxy:3128`) means `http://`.
 * - `localhost` and loopback addresses (127.0.0.0/8, ::1) are never proxied.
 * - NO_PROXY, else no_proxy: comma-separated entries, case-insensitive. `*` disables proxying;
 *   `10.0.0.0/8` matches IP-address hosts in that range; `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`
 *   match that address (and port); `foo.com` matches foo.com and its subdomains, `.foo.com` and
 *   `*.foo.com` its subdomains only, either with an optional `:port`. Names never match IP hosts.
 * - Not reproduced: Go's CGI guard (HTTP_PROXY refused when REQUEST_METHOD is set).
 */

/** The proxy a request URL goes through, or undefined for a direct connection. */
export type ProxyFunc = (url: URL) => URL | undefined;

/** Whether a host (lower case, IPv6 without brackets) and port are exempted by a NO_PROXY entry. */
type Matcher = (host: string, port: string, family: number) => boolean;

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

const ipType = (family: number) => (family === 6 ? 'ipv6' : 'ipv4');

/**
 * Reads the environment once, like Go's `httpproxy.FromEnvironment().ProxyFunc()`. As in Go, a
 * variable that is not a URL is an error only for a URL it would proxy (NO_PROXY, loopback and
 * the other scheme are unaffected): the returned function throws it then.
 */
export function proxyFromEnvironment(env: NodeJS.ProcessEnv): ProxyFunc {
  const proxyFrom = (upper: string, lower: string): URL | Error | undefined => {
    const name = env[upper] ? upper : lower;
    try {
      return parseProxy(name, env[name] ?? '');
    } catch (err) {
      return err as Error;
    }
  };
  const httpProxy = proxyFrom('HTTP_PROXY', 'http_proxy');
  const httpsProxy = proxyFrom('HTTPS_PROXY', 'https_proxy');
  const firstSet = (upper: string, lower: string) => env[upper] || env[lower] || '';
  const noProxy = parseNoProxy(firstSet('NO_PROXY', 'no_proxy'));
  return (url) => {
    const https = url.protocol === 'https:';
    const proxy = https ? httpsProxy : url.protocol === 'http:' ? httpProxy : undefined;
    if (proxy === undefined) return undefined;
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (host === 'localhost') return undefined;
    const family = isIP(host);
    if (family !== 0 && LOOPBACK.check(host, ipType(family))) return undefined;
    const port = url.port || (https ? '443' : '80');
    if (noProxy.some((m) => m(host, port, family))) return undefined;
    if (proxy instanceof Error) throw proxy;
    return proxy;
  };
}

/** A URL text for a message: `user:password@` replaced, since such messages reach stderr as they are. */
export function withoutCredentials(text: string): string {
  // Up to the last "@": a password may hold "/" or "@" (which is why such a URL does not parse).
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/i, '$1[redacted]@');
}

/**
 * The proxy a variable names. A value with a scheme that is no URL is an error naming the variable
 * (its credentials hidden), not a guess: prefixing `http://` would make a host of the scheme.
 */
function parseProxy(variable: string, value: string): URL | undefined {
  if (value === '') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
      throw new Error(`${variable} "${withoutCredentials(value)}" is not a valid proxy URL`);
    }
  }
  if (url === undefined || url.host === '') {
    try {
      return new URL(`http://${value}`);
    } catch {
      // Go returns the first parse when it had no error, else no proxy
    }
  }
  return url;
}

function parseNoProxy(value: string): Matcher[] {
  const matchers: Matcher[] = [];
  const portMatches = (want: string, port: string) => want === '' || want === port;
  for (const entry of value.split(',')) {
    const p = entry.trim().toLowerCase();
    if (p === '') continue;
    if (p === '*') return [() => true];
    const cidr = parseCidr(p);
    if (cidr !== undefined) {
      matchers.push((host, _port, family) => family !== 0 && cidr.check(host, ipType(family)));
      continue;
    }
    const split = splitHostPort(p);
    if (split !== undefined && split[0] === '') continue;
    const pport = split?.[1] ?? '';
    let phost = split?.[0] ?? p;
    const pfamily = phost.includes('%') ? 0 : isIP(phost); // Go's ParseIP takes no zone
    if (pfamily !== 0) {
      const list = new BlockList();
      list.addAddress(phost, ipType(pfamily));
      matchers.push(
        (host, port, family) => family !== 0 && list.check(host, ipType(family)) && portMatches(pport, port),
      );
      continue;
    }
    if (phost.startsWith('*.')) phost = phost.slice(1);
    const matchHost = !phost.startsWith('.'); // "foo.com" matches foo.com itself too
    if (matchHost) phost = `.${phost}`;
    if (/[^\p{ASCII}]/u.test(phost)) phost = domainToASCII(phost) || phost;
    const suffix = phost;
    matchers.push(
      (host, port, family) =>
        family === 0 &&
        (host.endsWith(suffix) || (matchHost && host === suffix.slice(1))) &&
        portMatches(pport, port),
    );
  }
  return matchers;
}

/** Go's net.ParseCIDR, as a BlockList; undefined when `p` is not one. */
function parseCidr(p: string): BlockList | undefined {
  const slash = p.indexOf('/');
  if (slash === -1) return undefined;
  const address = p.slice(0, slash);
  const bits = p.slice(slash + 1);
  const family = address.includes('%') ? 0 : isIP(address);
  if (family === 0 || !/^\d+$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) return undefined;
  const list = new BlockList();
  list.addSubnet(address, Number(bits), ipType(family));
  return list;
}

/** Go's net.SplitHostPort: `host:port` or `[host]:port` (port may be empty); undefined if neither. */
function splitHostPort(s: string): [string, string] | undefined {
  const colon = s.lastIndexOf(':');
  if (colon === -1) return undefined;
  let host: string;
  let rest = 0; // where `]` may no longer appear
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end === -1 || end + 1 !== colon) return undefined;
    host = s.slice(1, end);
    rest = end + 1;
  } else {
    host = s.slice(0, colon);
    if (host.includes(':')) return undefined;
  }
  if (s.indexOf('[', 1) !== -1 || s.indexOf(']', rest) !== -1) return undefined;
  return [host, s.slice(colon + 1)];
}
