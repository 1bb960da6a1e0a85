import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type } from 'typebox';
import { webhookDestination } from '../destinations/webhook.ts';
import { stdoutDestination } from '../destinations/stdout.ts';
import type { DestinationType } from '../destinations/types.ts';
import { loadConfig } from './load.ts';
import type { LoadOptions } from './load.ts';
import { ConfigError } from './errors.ts';

// Falcosidekick's config_example.yaml verbatim (upstream 8807ab7b); `.txt` keeps Prettier from restyling it.
const EXAMPLE = fileURLToPath(new URL('./fixtures/falcosidekick-config_example.yaml.txt', import.meta.url));

/** A webhook type as a real one would declare its Falcosidekick mapping. */
const webhookType: DestinationType<never> = {
  type: 'webhook',
  optionsSchema: Type.Object(
    {
      url: Type.String(),
      method: Type.Union([Type.Literal('POST'), Type.Literal('PUT')], { default: 'POST' }),
    },
    { additionalProperties: false },
  ),
  secretOptions: ['url'],
  sidekick: {
    section: 'webhook',
    enabledBy: 'address',
    keys: { address: 'url', method: 'method', customheaders: 'request.headers' },
    requestKeys: {
      checkcert: 'tls.verify',
      mutualtls: 'mutual_tls',
      maxconcurrentrequests: 'queue.concurrency',
    },
  },
  create() {
    throw new Error('not used');
  },
};
/** Fixed registries, so these tests do not change meaning as Eyrie gains destination types. */
const stdoutOnly = new Map([['stdout', stdoutDestination]]);
const withWebhook = new Map([...stdoutOnly, ['webhook', webhookType]]);

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'eyrie-sidekick-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function load(yaml: string, env: NodeJS.ProcessEnv = {}, options: Partial<LoadOptions> = {}) {
  const file = join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  return { ...loadConfig({ file, env, destinationTypes: stdoutOnly, ...options }), file };
}

/** Loads from env alone, as `eyrie serve` without --config. */
const loadEnv = (env: NodeJS.ProcessEnv, destinationTypes = stdoutOnly) =>
  loadConfig({ env, destinationTypes });

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.toString().split('\n');
  }
  assert.fail('expected a ConfigError');
}

describe('Falcosidekick config.yaml', () => {
  it("loads upstream's config_example.yaml unchanged, with no destinations", () => {
    const loaded = loadConfig({ file: EXAMPLE, env: {}, destinationTypes: stdoutOnly });
    assert.equal(loaded.format, 'falcosidekick');
    const { config } = loaded;
    assert.deepEqual(config.destinations, []);
    assert.equal(config.listen.port, 2801);
    // viper lower-cases map keys, so Falcosidekick emitted "akey"; Eyrie does the same and says so.
    assert.deepEqual(config.enrich.custom_fields, { akey: 'AValue', bkey: 'BValue', ckey: 'CValue' });
    assert.deepEqual(config.enrich.custom_tags, ['tagA', 'tagB']);
    assert.equal(
      config.enrich.output_field_format,
      '<timestamp>: <priority> <output> <custom_fields> <templated_fields>',
    );
    assert.deepEqual(config.listen.tls.plain_paths, ['/ping']);
    assert.equal(config.listen.tls.enabled, false);
    assert.ok(loaded.warnings.some((w) => w.includes('customfields.Akey becomes field "akey"')));
    assert.ok(loaded.warnings.includes('falcosidekick: outputFieldFormat → enrich.output_field_format'));
  });

  it('trims comma-separated strings from the file, and says Falcosidekick keeps the spaces', () => {
    const loaded = load(`customtags: zeta, alpha
tlsserver:
  notlspaths: /ping,/metrics
prometheus:
  extralabels: "proc.name, user.name"
`);
    assert.deepEqual(loaded.config.enrich.custom_tags, ['zeta', 'alpha']);
    assert.deepEqual(loaded.config.listen.tls.plain_paths, ['/ping', '/metrics']);
    assert.deepEqual(loaded.config.metrics.extra_labels, ['proc.name', 'user.name']);
    const notes = loaded.warnings.filter((w) => w.includes('keeps the spaces'));
    // Falcosidekick removes the spaces of extralabels itself: only customtags differs.
    assert.deepEqual(notes, [
      'falcosidekick: customtags "zeta, alpha": Falcosidekick keeps the spaces around commas (" alpha"); Eyrie trims them. Write a YAML list to get the same values from both',
    ]);
  });

  it('keeps the inner spaces of customtags, as Falcosidekick does (CUSTOMTAGS from env aside)', () => {
    assert.deepEqual(load(`customtags: ["my tag", x]\n`).config.enrich.custom_tags, ['my tag', 'x']);
    const inFile = load(`customtags: my tag, x\n`);
    assert.deepEqual(inFile.config.enrich.custom_tags, ['my tag', 'x']);
    assert.ok(inFile.warnings.some((w) => w.includes('(" x")')));
    assert.deepEqual(loadEnv({ CUSTOMTAGS: 'my tag, x' }).config.enrich.custom_tags, ['mytag', 'x']);
  });

  it('translates settings, reading keys in any case', () => {
    const { config, format } = load(`ListenAddress: 127.0.0.1
LISTENPORT: "2802"
bracketreplacer: _
tlsserver:
  Deploy: true
  certfile: /tls/crt
  keyfile: /tls/key
  mutualtls: true
  cacertfile: /tls/ca
  notlsport: 2811
  notlspaths: [/healthz, /metrics]
prometheus:
  extralabels: "k8s.ns.name, custom"
templatedfields:
  team: '{{ or (index . "k8s.ns.labels.team") "none" }}'
`);
    assert.equal(format, 'falcosidekick');
    assert.equal(config.listen.address, '127.0.0.1');
    assert.equal(config.listen.port, 2802);
    assert.equal(config.enrich.bracket_replacer, '_');
    assert.deepEqual(config.listen.tls, {
      enabled: true,
      cert_file: '/tls/crt',
      key_file: '/tls/key',
      require_client_cert: true,
      client_ca_file: '/tls/ca',
      plain_port: 2811,
      plain_paths: ['/healthz', '/metrics'],
    });
    assert.deepEqual(config.metrics.extra_labels, ['k8s.ns.name', 'custom']);
    assert.deepEqual(config.enrich.templated_fields, {
      team: '{{ or (index . "k8s.ns.labels.team") "none" }}',
    });
  });

  it('turns debug: true into a stdout destination named debug', () => {
    const { config, warnings } = load('debug: true\nlistenport: 2801\n');
    assert.equal(config.destinations.length, 1);
    const [debug] = config.destinations;
    assert.equal(debug?.name, 'debug');
    assert.equal(debug?.type, 'stdout');
    assert.equal(debug?.durability, 'memory');
    assert.deepEqual(debug?.options, { stream: 'stdout' });
    assert.ok(warnings.includes("falcosidekick: debug: true → destination 'debug' (type stdout)"));
  });

  it('refuses an enabled output Eyrie has no type for, but ignores a disabled one', () => {
    assert.doesNotThrow(() => load('slack:\n  webhookurl: ""\n  minimumpriority: ""\nloki:\n'));
    const found = problems(() =>
      load('listenport: 2801\nslack:\n  webhookurl: https://hooks.slack.com/services/X\n'),
    );
    assert.deepEqual(found, [
      `${join(dir, 'config.yaml')}:3:15: slack.webhookurl: output "slack" is not supported by this version of Eyrie; remove the "slack" section or leave slack.webhookurl empty`,
    ]);
  });

  it('names the fix where Falcosidekick would silently carry on', () => {
    const file = join(dir, 'config.yaml');
    const found = problems(() =>
      load(`listenaddress: localhost
listenport: 0
tlsserver:
  mutualtls: true
  notlsprot: 2811
aws:
  sqs:
    url: https://sqs.eu-west-1.amazonaws.com/1/q
lokki:
  hostport: http://loki:3100
`),
    );
    assert.deepEqual(found, [
      `${file}:1:16: listenaddress: "localhost" is not an IP address; use one such as 127.0.0.1, or "" for all interfaces`,
      `${file}:2:13: listenport: must be an integer 1-65535 (Falcosidekick would listen on a random port)`,
      `${file}:4:14: tlsserver.mutualtls: has no effect without TLS; also set listen.tls.enabled: true (Falcosidekick: tlsserver.deploy)`,
      `${file}:5:3: tlsserver.notlsprot: unknown key "notlsprot" in "tlsserver"; did you mean "notlsport"? (known: deploy, certfile, keyfile, mutualtls, cacertfile, notlsport, notlspaths)`,
      `${file}:8:10: aws.sqs.url: output "aws.sqs" is not supported by this version of Eyrie; remove the "aws.sqs" section or leave aws.sqs.url empty`,
      `${file}:9:1: lokki: unknown Falcosidekick setting "lokki"; did you mean "loki"?`,
    ]);
  });
});

describe('Falcosidekick outputs with an Eyrie destination type', () => {
  it('become a destination named after the section, keys translated', () => {
    const { config, warnings } = load(
      `webhook:
  address: http://receiver:8080/falco
  method: PUT
  minimumpriority: Warning
  checkcert: "false"
  customheaders:
    Authorization: Bearer abc
`,
      {},
      { destinationTypes: withWebhook },
    );
    const [hook] = config.destinations;
    assert.equal(hook?.name, 'webhook');
    assert.equal(hook?.type, 'webhook');
    assert.equal(hook?.filter.minimum_priority, 'Warning');
    assert.deepEqual(hook?.options, { url: 'http://receiver:8080/falco', method: 'PUT' });
    assert.equal(hook?.request.tls.verify, false);
    // viper lower-cases keys, headers included; HTTP header names are case-insensitive anyway.
    assert.deepEqual(hook?.request.headers, { authorization: 'Bearer abc' });
    assert.ok(warnings.includes("falcosidekick: webhook.address → destination 'webhook' (type webhook)"));
  });

  it('take an empty key (null) as unset and an empty method as POST, as viper and Falcosidekick do', () => {
    const { config } = load(
      `webhook:
  address: http://receiver:8080/falco
  method:
  customHeaders:
  #  key: value
  checkcert:
  mutualtls:
  maxconcurrentrequests:
  minimumpriority:
`,
      {},
      { destinationTypes: withWebhook },
    );
    const [hook] = config.destinations;
    assert.deepEqual(hook?.options, { url: 'http://receiver:8080/falco', method: 'POST' });
    assert.deepEqual(hook?.request.headers, {});
    assert.equal(hook?.request.tls.verify, true);
    assert.equal(hook?.queue.concurrency, 1);
    // The real webhook type: "" sends POST.
    const real = new Map([['webhook', webhookDestination]]);
    const empty = load('webhook:\n  address: http://r/\n  method: ""\n', {}, { destinationTypes: real });
    assert.equal(empty.config.destinations[0]!.options.method, '');
  });

  it('refuse a misspelt minimumpriority (Falcosidekick would send everything) and unknown keys', () => {
    const file = join(dir, 'config.yaml');
    const found = problems(() =>
      load(
        'webhook:\n  address: http://r\n  minimumpriority: warn\n  adress: x\n',
        {},
        { destinationTypes: withWebhook },
      ),
    );
    assert.deepEqual(found, [
      `${file}:3:20: webhook.minimumpriority: "warn" is not a Falco priority; did you mean "warning"? (one of emergency, alert, critical, error, warning, notice, informational, debug, info)`,
      `${file}:4:3: webhook.adress: "adress" is not supported for Falcosidekick output "webhook"; did you mean "address"? (supported: address, method, customheaders, checkcert, mutualtls, maxconcurrentrequests, minimumpriority)`,
    ]);
  });

  it('are configured by their env vars too, with EYRIE_ overrides on top', () => {
    const { config, format } = loadEnv(
      {
        WEBHOOK_ADDRESS: 'http://env-receiver/',
        WEBHOOK_MINIMUMPRIORITY: 'error',
        WEBHOOK_CUSTOMHEADERS: 'X-Token:a:b,X-Other:c',
        WEBHOOK_MAXCONCURRENTREQUESTS: '3',
        EYRIE_DESTINATIONS__WEBHOOK__METHOD: 'PUT',
      },
      withWebhook,
    );
    assert.equal(format, 'falcosidekick');
    const [hook] = config.destinations;
    assert.deepEqual(hook?.options, { url: 'http://env-receiver/', method: 'PUT' });
    assert.equal(hook?.filter.minimum_priority, 'Error');
    assert.deepEqual(hook?.request.headers, { 'X-Token': 'a:b', 'X-Other': 'c' });
    assert.equal(hook?.queue.concurrency, 3);
  });

  it("send one request at a time unless maxconcurrentrequests says otherwise (Falcosidekick's default)", () => {
    const plain = loadEnv({ WEBHOOK_ADDRESS: 'http://env-receiver/' }, withWebhook).config.destinations[0]!;
    assert.equal(plain.queue.concurrency, 1);
    const yaml = load('webhook:\n  address: http://receiver/\n', {}, { destinationTypes: withWebhook });
    assert.equal(yaml.config.destinations[0]!.queue.concurrency, 1);
    const overridden = loadEnv(
      { WEBHOOK_ADDRESS: 'http://env-receiver/', EYRIE_DESTINATIONS__WEBHOOK__QUEUE__CONCURRENCY: '8' },
      withWebhook,
    ).config.destinations[0]!;
    assert.equal(overridden.queue.concurrency, 8, 'an EYRIE_ override still wins');
  });

  it('take the global client certificate with mutualtls, and tlsclient.cacertfile in every case', () => {
    const yaml = (mutualtls: boolean) => `mutualtlsfilespath: /certs
mutualtlsclient:
  keyfile: /own/client.key
tlsclient:
  cacertfile: /ca/extra.crt
webhook:
  address: https://receiver/
  checkcert: false
  mutualtls: ${mutualtls}
`;
    const withCert = load(yaml(true), {}, { destinationTypes: withWebhook }).config.destinations[0]!;
    assert.deepEqual(withCert.request.tls, {
      verify: true,
      cert_file: '/certs/client.crt',
      key_file: '/own/client.key',
      ca_file: ['/ca/extra.crt', '/certs/ca.crt'],
    });
    const plain = load(yaml(false), {}, { destinationTypes: withWebhook });
    assert.deepEqual(plain.config.destinations[0]!.request.tls, {
      verify: false,
      cert_file: '',
      key_file: '',
      ca_file: '/ca/extra.crt',
    });
    assert.ok(
      plain.warnings.includes(
        'falcosidekick: mutualtlsclient.keyfile is not used: it applies to outputs with mutualtls: true, and there are none',
      ),
    );
  });
});

describe('Falcosidekick env vars', () => {
  it('apply without a config file', () => {
    const loaded = loadEnv({
      LISTENPORT: '2803',
      CUSTOMFIELDS: 'cluster:prod, url:http://example.com:8080/x,node:%NODE_NAME',
      NODE_NAME: 'worker-1',
      CUSTOMTAGS: 'a, b ,c',
      TEMPLATEDFIELDS: 'ns:{{ index . "k8s.ns.name" }}',
      TLSSERVER_NOTLSPATHS: '/ping,/metrics',
      PROMETHEUS_EXTRALABELS: 'k8s.ns.name',
      DEBUG: 'true',
      PATH: '/usr/bin:/bin',
      HOME: '/root',
    });
    assert.equal(loaded.format, 'falcosidekick');
    const { config } = loaded;
    assert.equal(config.listen.port, 2803);
    // Split on the first ':' only: Falcosidekick would drop the url pair.
    assert.deepEqual(config.enrich.custom_fields, {
      cluster: 'prod',
      url: 'http://example.com:8080/x',
      node: 'worker-1',
    });
    assert.deepEqual(config.enrich.custom_tags, ['a', 'b', 'c']);
    assert.deepEqual(config.enrich.templated_fields, { ns: '{{ index . "k8s.ns.name" }}' });
    assert.deepEqual(config.listen.tls.plain_paths, ['/ping', '/metrics']);
    assert.deepEqual(config.metrics.extra_labels, ['k8s.ns.name']);
    assert.deepEqual(
      config.destinations.map((d) => d.name),
      ['debug'],
    );
    assert.ok(loaded.warnings.includes('falcosidekick: env LISTENPORT → listen.port'));
  });

  it('override the Falcosidekick YAML, and merge into its customfields', () => {
    const { config } = load('listenport: 2801\ncustomfields:\n  env: dev\n  team: sec\n', {
      LISTENPORT: '2804',
      CUSTOMFIELDS: 'env:prod',
    });
    assert.equal(config.listen.port, 2804);
    assert.deepEqual(config.enrich.custom_fields, { env: 'prod', team: 'sec' });
  });

  it('keep a leading-zero customfield as written, and refuse a leading-zero port (octal to viper)', () => {
    assert.deepEqual(load('customfields:\n  zip: 01234\n').config.enrich.custom_fields, { zip: '01234' });
    const found = problems(() => load('listenport: 0640\n'));
    assert.equal(found.length, 1);
    assert.match(
      found[0]!,
      /:1:13: listenport: 0640 has a leading zero: YAML 1\.2 reads it as the decimal number 640, older readers as octal; write 0o640 for octal \(permission bits\) or 640$/,
    );
    assert.deepEqual(
      problems(() => loadEnv({ LISTENPORT: '02801' })),
      [
        'env LISTENPORT: 02801 has a leading zero, which older YAML readers take for octal (and 02801 is not octal); write 2801',
      ],
    );
  });

  it('report bad values by variable name', () => {
    const found = problems(() =>
      loadEnv({
        LISTENPORT: '99999',
        CUSTOMFIELDS: 'a:%NOT_SET,novalue',
        SLACK_WEBHOOKURL: 'https://hooks/x',
      }),
    );
    assert.deepEqual(found.sort(), [
      'env CUSTOMFIELDS: "a:%NOT_SET" reads environment variable NOT_SET, which is not set',
      'env CUSTOMFIELDS: "novalue" is not a key:value pair (write k1:v1,k2:v2)',
      'env LISTENPORT: must be an integer 1-65535',
      'env SLACK_WEBHOOKURL: output "slack" is not supported by this version of Eyrie; unset SLACK_WEBHOOKURL',
    ]);
  });

  it('leave a DEBUG meant for another tool alone, with a warning', () => {
    const loaded = loadEnv({ DEBUG: 'express:*' });
    assert.deepEqual(loaded.config.destinations, []);
    assert.deepEqual(loaded.warnings, [
      'falcosidekick: DEBUG=express:* is not true or false; debug output stays off',
    ]);
  });

  it('leave the defaults alone when none is set', () => {
    const loaded = loadEnv({ PATH: '/bin', DEBUG_MODE: '1', LISTEN: 'x' });
    assert.equal(loaded.format, 'defaults');
    assert.equal(loaded.config.listen.port, 2801);
  });
});
