import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { proxyFromEnvironment } from './proxy-from-env.ts';

const P = 'http://proxy:3128/';
const S = 'http://secure-proxy:3129/';

/** [what, environment, request URL, proxy expected (undefined = direct)]; each row checked against Go. */
const cases: [string, NodeJS.ProcessEnv, string, string | undefined][] = [
  // Which variable
  ['http URL uses HTTP_PROXY', { HTTP_PROXY: P }, 'http://example.com/', P],
  ['https URL uses HTTPS_PROXY', { HTTP_PROXY: P, HTTPS_PROXY: S }, 'https://example.com/', S],
  ['https URL never falls back to HTTP_PROXY', { HTTP_PROXY: P }, 'https://example.com/', undefined],
  ['http URL ignores HTTPS_PROXY', { HTTPS_PROXY: S }, 'http://example.com/', undefined],
  ['no variables: direct', {}, 'http://example.com/', undefined],
  ['uppercase wins over lowercase', { HTTP_PROXY: P, http_proxy: S }, 'http://example.com/', P],
  ['empty uppercase is skipped', { HTTP_PROXY: '', http_proxy: S }, 'http://example.com/', S],
  ['lowercase alone', { https_proxy: S }, 'https://example.com/', S],
  [
    'NO_PROXY wins over no_proxy',
    { HTTP_PROXY: P, NO_PROXY: 'a.com', no_proxy: 'b.com' },
    'http://b.com/',
    P,
  ],
  [
    'empty NO_PROXY is skipped',
    { HTTP_PROXY: P, NO_PROXY: '', no_proxy: 'b.com' },
    'http://b.com/',
    undefined,
  ],
  // Proxy values
  ['host:port means http://', { HTTP_PROXY: 'proxy:3128' }, 'http://example.com/', P],
  ['IP:port means http://', { HTTP_PROXY: '10.0.0.1:3128' }, 'http://example.com/', 'http://10.0.0.1:3128/'],
  ['socks5 kept', { HTTP_PROXY: 'socks5://s:1080' }, 'http://example.com/', 'socks5://s:1080'],
  // Never proxied
  ['localhost', { HTTP_PROXY: P }, 'http://localhost:8080/', undefined],
  ['127.0.0.1', { HTTP_PROXY: P }, 'http://127.0.0.1/', undefined],
  ['127.0.0.2 (all of 127/8)', { HTTP_PROXY: P }, 'http://127.0.0.2:8080/', undefined],
  ['127.255.255.254', { HTTPS_PROXY: S }, 'https://127.255.255.254/', undefined],
  ['::1', { HTTP_PROXY: P }, 'http://[::1]:8080/', undefined],
  ['IPv4-mapped loopback', { HTTP_PROXY: P }, 'http://[::ffff:127.0.0.3]/', undefined],
  ['a subdomain of localhost is proxied', { HTTP_PROXY: P }, 'http://a.localhost/', P],
  // NO_PROXY: *
  ['* disables proxying', { HTTP_PROXY: P, NO_PROXY: '*' }, 'http://example.com/', undefined],
  ['* among others', { HTTP_PROXY: P, NO_PROXY: 'a.com, * ' }, 'http://10.1.1.1/', undefined],
  // NO_PROXY: CIDR
  ['CIDR matches an IP host', { HTTP_PROXY: P, NO_PROXY: '10.0.0.0/8' }, 'http://10.1.2.3/x', undefined],
  ['CIDR outside', { HTTP_PROXY: P, NO_PROXY: '10.0.0.0/8' }, 'http://11.1.2.3/x', P],
  ['CIDR /24', { HTTP_PROXY: P, NO_PROXY: 'a.com,192.0.2.0/24' }, 'http://192.0.2.2:8080/', undefined],
  ['CIDR with host bits', { HTTP_PROXY: P, NO_PROXY: '192.0.2.7/24' }, 'http://192.0.2.200/', undefined],
  ['CIDR ignores the port', { HTTP_PROXY: P, NO_PROXY: '10.0.0.0/8' }, 'http://10.0.0.1:9999/', undefined],
  ['CIDR never matches a name', { HTTP_PROXY: P, NO_PROXY: '10.0.0.0/8' }, 'http://ten.example/', P],
  ['IPv6 CIDR', { HTTP_PROXY: P, NO_PROXY: 'fd00::/8' }, 'http://[fd00::2]/', undefined],
  ['IPv6 CIDR outside', { HTTP_PROXY: P, NO_PROXY: 'fd00::/8' }, 'http://[fe00::2]/', P],
  ['invalid CIDR ignored', { HTTP_PROXY: P, NO_PROXY: '10.0.0.0/33' }, 'http://10.0.0.1/', P],
  // NO_PROXY: IP addresses
  ['exact IP', { HTTP_PROXY: P, NO_PROXY: '10.0.0.1' }, 'http://10.0.0.1:8080/', undefined],
  ['another IP', { HTTP_PROXY: P, NO_PROXY: '10.0.0.1' }, 'http://10.0.0.2/', P],
  [
    'IP with the right port',
    { HTTP_PROXY: P, NO_PROXY: '10.0.0.1:8080' },
    'http://10.0.0.1:8080/',
    undefined,
  ],
  ['IP with another port', { HTTP_PROXY: P, NO_PROXY: '10.0.0.1:8080' }, 'http://10.0.0.1/', P],
  ['IP with the default port', { HTTPS_PROXY: S, NO_PROXY: '10.0.0.1:443' }, 'https://10.0.0.1/', undefined],
  ['IPv6 without brackets', { HTTP_PROXY: P, NO_PROXY: '2001:db8::1' }, 'http://[2001:db8::1]/', undefined],
  ['[IPv6]:port', { HTTP_PROXY: P, NO_PROXY: '[2001:db8::1]:80' }, 'http://[2001:db8::1]/', undefined],
  [
    '[IPv6] without a port is not an IP',
    { HTTP_PROXY: P, NO_PROXY: '[2001:db8::1]' },
    'http://[2001:db8::1]/',
    P,
  ],
  ['an IP entry never matches a name', { HTTP_PROXY: P, NO_PROXY: '10.0.0.1' }, 'http://10.0.0.1.nip.io/', P],
  // NO_PROXY: names
  ['name matches itself', { HTTP_PROXY: P, NO_PROXY: 'foo.com' }, 'http://foo.com/', undefined],
  ['name matches subdomains', { HTTP_PROXY: P, NO_PROXY: 'foo.com' }, 'http://x.y.foo.com/', undefined],
  ['name does not match a longer label', { HTTP_PROXY: P, NO_PROXY: 'foo.com' }, 'http://barfoo.com/', P],
  ['.name matches subdomains', { HTTP_PROXY: P, NO_PROXY: '.foo.com' }, 'http://x.foo.com/', undefined],
  ['.name does not match itself', { HTTP_PROXY: P, NO_PROXY: '.foo.com' }, 'http://foo.com/', P],
  ['*.name is .name', { HTTP_PROXY: P, NO_PROXY: '*.foo.com' }, 'http://foo.com/', P],
  ['*.name matches subdomains', { HTTP_PROXY: P, NO_PROXY: '*.foo.com' }, 'http://x.foo.com/', undefined],
  [
    'entries are case-insensitive and trimmed',
    { HTTP_PROXY: P, NO_PROXY: ' a.com ,  FOO.Com ' },
    'http://foo.com/',
    undefined,
  ],
  [
    'name with the right port',
    { HTTP_PROXY: P, NO_PROXY: 'foo.com:8080' },
    'http://foo.com:8080/',
    undefined,
  ],
  ['name with another port', { HTTP_PROXY: P, NO_PROXY: 'foo.com:8080' }, 'http://foo.com/', P],
  [
    'name with the https default port',
    { HTTPS_PROXY: S, NO_PROXY: 'foo.com:443' },
    'https://foo.com/',
    undefined,
  ],
  ['name with an empty port', { HTTP_PROXY: P, NO_PROXY: 'foo.com:' }, 'http://foo.com:81/', undefined],
  ['malformed :port entry ignored', { HTTP_PROXY: P, NO_PROXY: ':80' }, 'http://foo.com/', P],
  ['IDN entry', { HTTP_PROXY: P, NO_PROXY: 'bücher.de' }, 'http://www.bücher.de/', undefined],
  ['names never match an IP host', { HTTP_PROXY: P, NO_PROXY: '1' }, 'http://10.0.0.1/', P],
];

describe('proxyFromEnvironment (Go ProxyFromEnvironment rules)', () => {
  for (const [what, env, url, want] of cases) {
    it(what, () => {
      assert.equal(proxyFromEnvironment(env)(new URL(url))?.href, want);
    });
  }

  it('names the variable of a proxy URL it cannot read, without its credentials, for a URL it would proxy', () => {
    for (const name of ['HTTPS_PROXY', 'https_proxy']) {
      const bad = { [name]: 'http://bob:Pr0x/y@Pass@proxy.example.com:99999', NO_PROXY: 'internal.example' };
      const proxyFor = proxyFromEnvironment(bad);
      assert.throws(
        () => proxyFor(new URL('https://example.com/')),
        (e: Error) =>
          e.message === `${name} "http://[redacted]@proxy.example.com:99999" is not a valid proxy URL`,
      );
      // As in Go: the broken variable does not matter where it would not be used.
      assert.equal(proxyFor(new URL('https://internal.example/')), undefined);
      assert.equal(proxyFor(new URL('http://example.com/')), undefined);
    }
  });

  it('reads the environment when created', () => {
    const env: NodeJS.ProcessEnv = { HTTP_PROXY: P };
    const proxyFor = proxyFromEnvironment(env);
    env.NO_PROXY = '*';
    assert.equal(proxyFor(new URL('http://example.com/'))?.href, P);
  });
});
