import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './load.ts';
import type { LoadedConfig } from './load.ts';
import { ConfigError } from './errors.ts';
import { stdoutDestination } from '../destinations/stdout.ts';
import { fileDestination } from '../destinations/file.ts';
import { compileFilter } from '../routing/filter.ts';
import { parseFalcoEvent } from '../event/falco-event.ts';

/** Only `stdout`, so messages listing types do not change as types are added to the registry. */
const types = new Map([['stdout', stdoutDestination]]);

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'eyrie-config-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `yaml` to a file in the temp dir and loads it. */
function load(
  yaml: string,
  env: NodeJS.ProcessEnv = {},
  name = 'eyrie.yaml',
): LoadedConfig & { file: string } {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return { ...loadConfig({ file, env, destinationTypes: types }), file };
}

/** The rendered issues of the ConfigError that `fn` throws. */
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.toString().split('\n');
  }
  assert.fail('expected a ConfigError');
}

describe('native config: defaults', () => {
  it('without a file, gives the documented defaults', () => {
    const loaded = loadConfig({ env: {}, destinationTypes: types });
    assert.equal(loaded.format, 'defaults');
    assert.deepEqual(loaded.warnings, []);
    const { config } = loaded;
    assert.deepEqual(config.listen, {
      enabled: true,
      address: '',
      port: 2801,
      body_limit: 1024 * 1024,
      keep_alive_timeout: 75_000,
      shutdown_delay: 0,
      tls: {
        enabled: false,
        cert_file: '/etc/certs/server/server.crt',
        key_file: '/etc/certs/server/server.key',
        client_ca_file: '/etc/certs/server/ca.crt',
        require_client_cert: false,
        plain_port: 2810,
        plain_paths: [],
      },
    });
    assert.deepEqual(config.auth, { tokens: [], exempt_paths: ['/healthz', '/ping', '/metrics'] });
    assert.deepEqual(config.enrich, {
      custom_fields: {},
      custom_tags: [],
      templated_fields: {},
      bracket_replacer: '',
      output_field_format: '',
    });
    assert.deepEqual(config.metrics, { extra_labels: [], max_series: 10_000 });
    assert.deepEqual(config.log, { level: 'info', format: 'json' });
    assert.deepEqual(config.storage, { path: './data' });
    assert.deepEqual(config.delivery, {
      commit_interval: 0,
      commit_max_events: 512,
      disk_cap: 10 * 1024 ** 3,
      shutdown_timeout: 10_000,
    });
    assert.deepEqual(config.destinations, []);
  });

  it('reads sizes and durations in words, and fills destination defaults', () => {
    const { config, format } = load(`
listen:
  port: 2900
  body_limit: 512KiB
  keep_alive_timeout: 1m30s
delivery:
  disk_cap: 10MB
destinations:
  - name: out
    type: stdout
    filter: { minimum_priority: WARNING }
    queue: { lease: 2m }
    retry: { max_elapsed_time: 24h, initial_interval: 500ms }
`);
    assert.equal(format, 'native');
    assert.equal(config.listen.port, 2900);
    assert.equal(config.listen.body_limit, 512 * 1024);
    assert.equal(config.listen.keep_alive_timeout, 90_000);
    assert.equal(config.delivery.disk_cap, 10_000_000);
    const [out] = config.destinations;
    assert.ok(out);
    assert.equal(out.filter.minimum_priority, 'Warning');
    assert.deepEqual(out.options, { stream: 'stdout' });
    assert.equal(out.durability, 'disk');
    assert.equal(out.queue.lease, 120_000);
    assert.equal(out.retry.initial_interval, 500);
    assert.equal(out.retry.max_elapsed_time, 86_400_000);
    assert.deepEqual(out.batch, { max_events: 1, max_bytes: 0, timeout: 0 });
    assert.equal(out.request.timeout, 30_000);
  });

  it('keeps a number in a filter condition as written: 3.10, 1.0, 1e3, integers beyond 2^53', () => {
    const { config } = load(
      [
        'destinations:',
        '  - name: out',
        '    type: stdout',
        '    filter:',
        '      fields:',
        '        container.image.tag: { not_in: [latest, 3.10, 1.0, 1e3] }',
        '        evt.time: { in: [1, 1234567890123456789] }',
        '        proc.pid: { equals: 1234 }',
        '    queue: { max_events: 1e3 }',
        '',
      ].join('\n'),
    );
    const [out] = config.destinations;
    const fields = out!.filter.fields!;
    assert.deepEqual(fields['container.image.tag'], { not_in: ['latest', '3.10', '1.0', '1e3'] });
    assert.deepEqual(fields['evt.time'], { in: [1, '1234567890123456789'] });
    assert.deepEqual(fields['proc.pid'], { equals: 1234 });
    // Elsewhere a number is still a number.
    assert.equal(out!.queue.max_events, 1000);
    const accepts = compileFilter(out!.filter, 'destinations[0].filter');
    const event = (tag: string) =>
      parseFalcoEvent(
        `{"output":"x","priority":"Warning","rule":"r","time":"2026-01-01T00:00:00Z","output_fields":{"container.image.tag":"${tag}","evt.time":1234567890123456789,"proc.pid":1234}}`,
      );
    assert.equal(accepts(event('3.10')), false, 'excluded as written');
    assert.equal(accepts(event('1.0')), false);
    assert.equal(accepts(event('3.1')), true, 'not what YAML would have made of 3.10');
  });

  it('accepts port 0 (any free port), for tests', () => {
    assert.equal(load('listen: { address: 127.0.0.1, port: 0 }\n').config.listen.port, 0);
  });

  it('an empty file is the defaults, in native format', () => {
    const loaded = load('# nothing yet\n');
    assert.equal(loaded.format, 'native');
    assert.equal(loaded.config.listen.port, 2801);
  });
});

describe('native config: located errors', () => {
  it('reports every problem at once, each at file:line:column', () => {
    const yaml = [
      /* 1 */ 'listen:',
      /* 2 */ '  port: 70000',
      /* 3 */ '  prot: 1',
      /* 4 */ '  body_limit: lots',
      /* 5 */ 'auth:',
      /* 6 */ '  tokens: "not-a-list"',
      /* 7 */ '  exempt_paths: ["${UNSET_VAR}"]',
      /* 8 */ 'log: { level: verbose }',
      /* 9 */ 'destinations:',
      /* 10 */ '  - name: out',
      /* 11 */ '    type: stdout',
      /* 12 */ '    filter: { minimum_priority: warn }',
      /* 13 */ '  - name: out',
      /* 14 */ '    type: stdout',
      /* 15 */ '  - name: hook',
      /* 16 */ '    type: webhok',
      /* 17 */ '  - name: bad name',
      /* 18 */ '    type: stdout',
      /* 19 */ 'storage: { path_file: missing-secret.txt }',
      '',
    ].join('\n');
    const file = join(dir, 'errors.yaml');
    const found = problems(() => load(yaml, {}, 'errors.yaml'));
    assert.deepEqual(found, [
      `${file}:2:9: listen.port: must be an integer 1-65535 (or 0 for any free port)`,
      `${file}:3:3: listen.prot: unknown key "prot"; did you mean "port"?`,
      `${file}:4:15: listen.body_limit: "lots" is not a size like "512KiB", "1MiB" or "10MB"`,
      `${file}:6:11: auth.tokens: must be a list of strings`,
      `${file}:7:18: auth.exempt_paths[0]: environment variable UNSET_VAR is not set (use \${UNSET_VAR:-default} for a default)`,
      `${file}:8:15: log.level: must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent"`,
      `${file}:12:33: destinations[0].filter.minimum_priority: "warn" is not a Falco priority; did you mean "warning"? (one of emergency, alert, critical, error, warning, notice, informational, debug, info)`,
      `${file}:13:11: destinations[1].name: duplicate destination name "out" (first at line 10)`,
      `${file}:16:11: destinations[2].type: unknown destination type "webhok" (known types: stdout)`,
      `${file}:17:11: destinations[3].name: must be a name of lower-case letters, digits, "_", "." and "-", starting with a letter or digit`,
      `${file}:19:23: storage.path_file: cannot read "${join(dir, 'missing-secret.txt')}": no such file`,
    ]);
  });

  it('refuses what would fail later: a concurrency that exhausts memory, an empty name a filter requires', () => {
    const yaml = [
      /* 1 */ 'destinations:',
      /* 2 */ '  - name: out',
      /* 3 */ '    type: stdout',
      /* 4 */ '    queue: { concurrency: 1000000000 }',
      /* 5 */ '    filter:',
      /* 6 */ '      rules: ["${RULE:-}", ok]',
      /* 7 */ '      tags: { any: [""], none: [""] }',
      /* 8 */ '      exclude_rules: ["${EXTRA:-}"]',
      '',
    ].join('\n');
    const file = join(dir, 'later.yaml');
    assert.deepEqual(
      problems(() => load(yaml, {}, 'later.yaml')),
      [
        `${file}:4:27: destinations[0].queue.concurrency: must be an integer 1-1000`,
        `${file}:6:15: destinations[0].filter.rules[0]: must be a non-empty string`,
        `${file}:7:21: destinations[0].filter.tags.any[0]: must be a non-empty string`,
      ],
    );
  });

  it('names the minimum of a size or duration written as a number below it, in the file and in env vars', () => {
    const yaml = 'listen:\n  body_limit: 0\ndestinations:\n  - name: out\n    type: stdout\n';
    const file = join(dir, 'minimum.yaml');
    assert.deepEqual(
      problems(() => load(yaml, { EYRIE_DESTINATIONS__OUT__REQUEST__TIMEOUT: '0' }, 'minimum.yaml')),
      [
        `${file}:2:15: listen.body_limit: must be at least 1`,
        'env EYRIE_DESTINATIONS__OUT__REQUEST__TIMEOUT: must be at least 1ms',
      ],
    );
  });

  it('says why an empty token or an upper-case destination name is refused', () => {
    const yaml = [
      /* 1 */ 'auth:',
      /* 2 */ '  tokens: ["${TOKEN:-}"]',
      /* 3 */ 'destinations:',
      /* 4 */ '  - name: Soc',
      /* 5 */ '    type: stdout',
      '',
    ].join('\n');
    const file = join(dir, 'empty-token.yaml');
    assert.deepEqual(
      problems(() => load(yaml, {}, 'empty-token.yaml')),
      [
        `${file}:2:12: auth.tokens[0]: must be a non-empty string`,
        `${file}:4:11: destinations[0].name: must be a name of lower-case letters, digits, "_", "." and "-", starting with a letter or digit`,
      ],
    );
  });

  it('names unknown options of a destination type, with the options it has', () => {
    const found = problems(() => load('destinations:\n  - name: out\n    type: stdout\n    steam: stderr\n'));
    assert.equal(found.length, 1);
    assert.match(
      found[0]!,
      /:4:5: destinations\[0\]\.steam: unknown option "steam" for destination type "stdout"; did you mean "stream"\?/,
    );
  });

  it('checks keys that depend on each other: TLS, batch, lease, fallback', () => {
    const found = problems(() =>
      load(`listen:
  tls: { require_client_cert: true }
destinations:
  - name: a
    type: stdout
    fallback: b
    batch: { max_events: 10 }
  - name: b
    type: stdout
    fallback: a
    request: { timeout: 1m }
    queue: { lease: 30s }
  - name: c
    type: stdout
    fallback: nowhere
`),
    );
    const at = (fragment: string) => found.find((line) => line.includes(fragment));
    assert.match(
      at('require_client_cert') ?? '',
      /:2:31: listen\.tls\.require_client_cert: has no effect without TLS/,
    );
    assert.match(
      at('batch') ?? '',
      /:7:26: destinations\[0\]\.batch\.max_events: must be 1: destination type "stdout" sends one event at a time/,
    );
    assert.match(
      at('lease') ?? '',
      /:12:21: destinations\[1\]\.queue\.lease: must be longer than request\.timeout \+ 5s \(1m5s\)/,
    );
    assert.match(at('[0].fallback') ?? '', /:6:15: .*fallbacks form a loop: a → b → a/);
    assert.match(at('[2].fallback') ?? '', /:15:15: .*no destination named "nowhere"/);
  });

  it('refuses two file destinations on one path (they would rotate and truncate each other)', () => {
    const file = join(dir, 'shared-file.yaml');
    writeFileSync(
      file,
      `destinations:
  - name: critical
    type: file
    path: ${dir}/out/events.ndjson
  - name: k8s
    type: file
    path: ${dir}/out/../out/events.ndjson
  - name: other
    type: file
    path: ${dir}/out/other.ndjson
`,
    );
    const found = problems(() =>
      loadConfig({ file, env: {}, destinationTypes: new Map([['file', fileDestination]]) }),
    );
    assert.deepEqual(found, [
      `${file}:7:11: destinations[1].path: ${dir}/out/events.ndjson is already the file of destination "critical": give each file destination its own path (one destination with a wider filter can take both kinds of events)`,
    ]);
  });

  it('reports YAML syntax errors with their position', () => {
    const found = problems(() => load('listen:\n  port: [1,\n'));
    assert.equal(found.length, 1);
    assert.match(found[0]!, /eyrie\.yaml:\d+:\d+: /);
  });

  it('reports an alias inside its own anchor, and too many aliases, instead of crashing or hanging', () => {
    const loop = problems(() => load('destinations: &d\n  - *d\n'));
    assert.ok(
      loop.some((p) =>
        /eyrie\.yaml:2:5: destinations\[0\]\[0\]: alias \*d is inside its own anchor &d/.test(p),
      ),
      loop.join('\n'),
    );
    // Nine levels of ten aliases: 10^9 values if expanded.
    const levels = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++)
      levels.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const laughs = problems(() => load(`${levels.join('\n')}\n`));
    assert.ok(
      laughs.some((p) => /more than 1000 aliases \(\*name\) expanded/.test(p)),
      laughs.join('\n'),
    );
  });

  it("takes YAML merge keys (<<: *anchor, <<: [*a, *b]); the map's own keys override merged ones", () => {
    const { config } = load(
      'destinations:\n  - &common\n    name: a\n    type: stdout\n    queue: { concurrency: 2, max_events: 10 }\n  - <<: *common\n    name: b\n  - <<: [*common]\n    name: c\n    queue: { concurrency: 3 }\n',
    );
    assert.deepEqual(
      config.destinations.map((d) => [d.name, d.type, d.queue.concurrency, d.queue.max_events]),
      [
        ['a', 'stdout', 2, 10],
        ['b', 'stdout', 2, 10],
        ['c', 'stdout', 3, 100_000],
      ],
    );
    const bad = problems(() => load('destinations:\n  - <<: 5\n    name: d\n    type: stdout\n'));
    assert.ok(
      bad.some((p) =>
        /eyrie\.yaml:2:9: destinations\[0\]: a merge key \(<<\) takes a map, or a list of maps/.test(p),
      ),
      bad.join('\n'),
    );
  });

  it('refuses a file that mixes native sections and Falcosidekick keys', () => {
    const found = problems(() => load('listen:\n  port: 2801\nlistenport: 2802\n'));
    assert.equal(found.length, 1);
    assert.match(
      found[0]!,
      /:3:1: listenport: "listenport" is a Falcosidekick setting, but this file also has Eyrie sections \(listen\)/,
    );
  });

  it('says when the config file cannot be read', () => {
    const file = join(dir, 'does-not-exist.yaml');
    assert.deepEqual(
      problems(() => loadConfig({ file, env: {} })),
      [`${file}: cannot read the config file: no such file`],
    );
  });
});

describe('native config: secrets', () => {
  it('expands ${VAR} and ${VAR:-default}, re-typing unquoted scalars, keeping $${ literal', () => {
    const { config } = load(
      `listen:
  port: \${PORT}
auth:
  tokens: ["\${TOKEN}", "pre-\${EMPTY:-fallback}", "$\${NOT_A_VAR}"]
storage:
  path: "\${DATA_DIR:-/var/lib/eyrie}"
`,
      { PORT: '2805', TOKEN: 's3cret', EMPTY: '' },
    );
    assert.equal(config.listen.port, 2805);
    assert.deepEqual(config.auth.tokens, ['s3cret', 'pre-fallback', '${NOT_A_VAR}']);
    assert.equal(config.storage.path, '/var/lib/eyrie');
  });

  it('reads X_file (relative to the config file), one value per line for lists', () => {
    writeFileSync(join(dir, 'tokens.txt'), 'token-one\ntoken-two\n\n');
    writeFileSync(join(dir, 'password.txt'), 'pa:ss\n');
    const { config } = load(`auth:
  tokens_file: tokens.txt
destinations:
  - name: out
    type: stdout
    request:
      auth:
        password_file: ${join(dir, 'password.txt')}
`);
    assert.deepEqual(config.auth.tokens, ['token-one', 'token-two']);
    assert.equal(config.destinations[0]?.request.auth.password, 'pa:ss');
    // cert_file is a setting of its own, not a reference to a `cert` secret.
    assert.equal(config.listen.tls.cert_file, '/etc/certs/server/server.crt');
  });

  it('refuses X and X_file together', () => {
    writeFileSync(join(dir, 'tokens.txt'), 'a\n');
    const found = problems(() => load('auth:\n  tokens: [b]\n  tokens_file: tokens.txt\n'));
    assert.deepEqual(found, [
      `${join(dir, 'eyrie.yaml')}:3:3: auth.tokens_file: set either "tokens" or "tokens_file", not both`,
    ]);
  });
});

describe('EYRIE_ env overrides', () => {
  const yaml = `listen:
  port: 2801
enrich:
  custom_fields: { Cluster: dev }
destinations:
  - name: my-out
    type: stdout
`;

  it('override any setting, case-insensitively, destinations by name', () => {
    writeFileSync(join(dir, 'env-tokens.txt'), 'from-file\n');
    const { config } = load(yaml, {
      EYRIE_LISTEN__PORT: '2802',
      eyrie_log__level: 'debug',
      EYRIE_LISTEN__KEEP_ALIVE_TIMEOUT: '5s',
      EYRIE_LISTEN__TLS__ENABLED: 'true',
      EYRIE_AUTH__EXEMPT_PATHS: '/healthz, /ready',
      EYRIE_AUTH__TOKENS_FILE: join(dir, 'env-tokens.txt'),
      EYRIE_ENRICH__CUSTOM_FIELDS__CLUSTER: 'prod',
      EYRIE_ENRICH__CUSTOM_FIELDS__REGION: 'eu',
      EYRIE_DESTINATIONS__MY_OUT__STREAM: 'stderr',
      EYRIE_DESTINATIONS__MY_OUT__FILTER__MINIMUM_PRIORITY: 'critical',
      EYRIE_DESTINATIONS__MY_OUT__QUEUE__CONCURRENCY: '2',
      EYRIE_CONFIG: '/etc/eyrie/eyrie.yaml',
      PATH: '/usr/bin',
    });
    assert.equal(config.listen.port, 2802);
    assert.equal(config.log.level, 'debug');
    assert.equal(config.listen.keep_alive_timeout, 5000);
    assert.equal(config.listen.tls.enabled, true);
    assert.deepEqual(config.auth.exempt_paths, ['/healthz', '/ready']);
    assert.deepEqual(config.auth.tokens, ['from-file']);
    assert.deepEqual(config.enrich.custom_fields, { Cluster: 'prod', region: 'eu' });
    const [out] = config.destinations;
    assert.deepEqual(out?.options, { stream: 'stderr' });
    assert.equal(out?.filter.minimum_priority, 'Critical');
    assert.equal(out?.queue.concurrency, 2);
  });

  it('report bad values and unknown settings by variable name', () => {
    const found = problems(() =>
      load(yaml, {
        EYRIE_LISTEN__PORT: 'eighty',
        EYRIE_LISTEN_PORT: '1',
        EYRIE_DESTINATIONS__NOPE__STREAM: 'stderr',
        EYRIE_DESTINATIONS__MY_OUT__FILTER__MINIMUM_PRIORITY: 'warn',
        EYRIE_LISTEN: 'x',
        // Kubernetes' service links for Services named `eyrie` and `eyrie-falcosidekick`: not settings.
        EYRIE_SERVICE_HOST: '10.0.0.1',
        EYRIE_SERVICE_PORT: '2801',
        EYRIE_SERVICE_PORT_HTTP: '2801',
        EYRIE_PORT: 'tcp://10.0.0.1:2801',
        EYRIE_PORT_2801_TCP: 'tcp://10.0.0.1:2801',
        EYRIE_PORT_2801_TCP_ADDR: '10.0.0.1',
        EYRIE_PORT_2801_TCP_PORT: '2801',
        EYRIE_PORT_2801_TCP_PROTO: 'tcp',
        EYRIE_FALCOSIDEKICK_SERVICE_HOST: '10.0.0.2',
        EYRIE_FALCOSIDEKICK_PORT_2801_TCP_ADDR: '10.0.0.2',
      }),
    );
    assert.deepEqual(found.sort(), [
      'env EYRIE_DESTINATIONS__MY_OUT__FILTER__MINIMUM_PRIORITY: "warn" is not a Falco priority; did you mean "warning"? (one of emergency, alert, critical, error, warning, notice, informational, debug, info)',
      'env EYRIE_DESTINATIONS__NOPE__STREAM: no destination named "nope" (destinations: my-out)',
      'env EYRIE_LISTEN: is a section; set one of its keys, e.g. EYRIE_LISTEN__ADDRESS',
      'env EYRIE_LISTEN_PORT: unknown setting; did you mean EYRIE_LISTEN__PORT?',
      'env EYRIE_LISTEN__PORT: must be an integer 1-65535 (or 0 for any free port)',
    ]);
  });

  it('refuse a variable and its _FILE form together, whichever sorts last', () => {
    writeFileSync(join(dir, 'env-tokens.txt'), 'from-file\n');
    assert.deepEqual(
      problems(() =>
        load(yaml, { EYRIE_AUTH__TOKENS: 'from-env', eyrie_auth__tokens_file: join(dir, 'env-tokens.txt') }),
      ),
      ['env eyrie_auth__tokens_file: set either EYRIE_AUTH__TOKENS or eyrie_auth__tokens_file, not both'],
    );
  });

  it('say that lists and maps of sections cannot be set, and leave the YAML as written', () => {
    const NOT_FROM_ENV =
      'cannot be set from the environment (a list or map of sections, such as sources.files or filter.fields); write it in the YAML, with ${VAR} where a value must come from the environment';
    const withSources = `${yaml}sources:\n  grpc:\n    - address: unix:///run/falco.sock\n`;
    assert.deepEqual(
      problems(() =>
        load(withSources, {
          EYRIE_SOURCES__FILES: '/var/log/falco.json',
          EYRIE_SOURCES__GRPC__0__ADDRESS: 'unix:///x.sock',
          EYRIE_DESTINATIONS__MY_OUT__FILTER__FIELDS: 'x',
          EYRIE_DESTINATIONS__MY_OUT__FILTER__FIELDS__K8S_NS_NAME: 'x',
          EYRIE_DESTINATIONS__MY_OUT__FILTER__FIELDS__K8S_NS_NAME__EQUALS: 'x',
          EYRIE_DESTINATIONS: 'x',
        }),
      ).sort(),
      [
        'env EYRIE_DESTINATIONS: is a list; set a key of one destination, e.g. EYRIE_DESTINATIONS__NAME__FILTER__MINIMUM_PRIORITY',
        `env EYRIE_DESTINATIONS__MY_OUT__FILTER__FIELDS: ${NOT_FROM_ENV}`,
        `env EYRIE_DESTINATIONS__MY_OUT__FILTER__FIELDS__K8S_NS_NAME: ${NOT_FROM_ENV}`,
        `env EYRIE_DESTINATIONS__MY_OUT__FILTER__FIELDS__K8S_NS_NAME__EQUALS: ${NOT_FROM_ENV}`,
        `env EYRIE_SOURCES__FILES: ${NOT_FROM_ENV}`,
        `env EYRIE_SOURCES__GRPC__0__ADDRESS: ${NOT_FROM_ENV}`,
      ],
    );
  });

  it('refuse a duration past 2^53 ms, and read octal integers as YAML does', () => {
    assert.deepEqual(
      problems(() => load(yaml, { EYRIE_DESTINATIONS__MY_OUT__REQUEST__TIMEOUT: '100000000000000000000' })),
      [
        `env EYRIE_DESTINATIONS__MY_OUT__REQUEST__TIMEOUT: 100000000000000000000 is too large: at most 9007199254740991`,
      ],
    );
    assert.equal(
      load(yaml, { EYRIE_DESTINATIONS__MY_OUT__QUEUE__CONCURRENCY: '0o17' }).config.destinations[0]!.queue
        .concurrency,
      15,
    );
  });

  it('refuse an integer with a leading zero, which YAML 1.2 reads as decimal and older readers as octal', () => {
    assert.deepEqual(
      problems(() => load(yaml, { EYRIE_DESTINATIONS__MY_OUT__QUEUE__CONCURRENCY: '010' })),
      [
        'env EYRIE_DESTINATIONS__MY_OUT__QUEUE__CONCURRENCY: 010 has a leading zero: YAML 1.2 reads it as the decimal number 10, older readers as octal; write 0o10 for octal (permission bits) or 10',
      ],
    );
    const found = problems(() => load('listen:\n  port: 0640\n'));
    assert.equal(found.length, 1);
    assert.match(
      found[0]!,
      /eyrie\.yaml:2:9: listen\.port: 0640 has a leading zero: YAML 1\.2 reads it as the decimal number 640, older readers as octal; write 0o640 for octal \(permission bits\) or 640$/,
    );
    // Not octal: no octal advice.
    assert.match(
      problems(() => load('listen:\n  port: 02801\n'))[0]!,
      /listen\.port: 02801 has a leading zero, which older YAML readers take for octal \(and 02801 is not octal\); write 2801$/,
    );
    // A string setting keeps the text as written (YAML 1.2 would have made 01234 the number 1234).
    assert.deepEqual(
      load('enrich:\n  custom_fields:\n    zip: 01234\n    port: ${PORT}\n', { PORT: '0080' }).config.enrich
        .custom_fields,
      {
        zip: '01234',
        port: '0080',
      },
    );
    // Where both readings agree there is nothing to refuse.
    assert.equal(load('listen:\n  port: 007\n').config.listen.port, 7);
    assert.equal(
      load(yaml, { EYRIE_DESTINATIONS__MY_OUT__QUEUE__CONCURRENCY: '007' }).config.destinations[0]!.queue
        .concurrency,
      7,
    );
  });

  it('warn that Falcosidekick env vars do not apply to a native file', () => {
    const { warnings, config } = load(yaml, { LISTENPORT: '9999' });
    assert.equal(config.listen.port, 2801);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^LISTENPORT ignored: .* native format/);
  });
});
