import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from 'typebox';
import { parse } from 'yaml';
import { fileDestination } from '../destinations/file.ts';
import { stdoutDestination } from '../destinations/stdout.ts';
import type { DestinationType } from '../destinations/types.ts';
import { loadConfig } from './load.ts';
import { MASK, renderConfig, secretValues } from './render.ts';

/** A type with a declared secret, a secret-sounding option and a plain one. */
const apiType: DestinationType<never> = {
  type: 'api',
  optionsSchema: Type.Object(
    {
      webhook_url: Type.String(),
      api_key: Type.String({ default: '' }),
      endpoint: Type.String({ default: '' }),
      channel: Type.String({ default: '#falco' }),
    },
    { additionalProperties: false },
  ),
  secretOptions: ['webhook_url'],
  create() {
    throw new Error('not used');
  },
};
const types = new Map([
  ['stdout', stdoutDestination],
  ['api', apiType],
]);

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'eyrie-render-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const YAML = `listen:
  body_limit: 2MiB
auth:
  tokens: ["\${INGEST_TOKEN}", second-token]
destinations:
  - name: chat
    type: api
    webhook_url: https://hooks.example.com/services/T000/B000/XXXX
    api_key: key-123456
    endpoint: https://user:pa55word@api.example.com/v1?region=eu&access_token=tok%2Fen-9&sig=&code=fn-code
    channel: "#alerts"
    request:
      headers: { Authorization: Bearer header-secret, X-Team: sec }
      auth: { username: eyrie, password: basic-secret }
      proxy: http://proxyuser:proxy-secret@proxy:3128
`;

function loadExample() {
  const file = join(dir, 'eyrie.yaml');
  writeFileSync(file, YAML);
  return loadConfig({ file, env: { INGEST_TOKEN: 'ingest-secret' }, destinationTypes: types });
}

const SECRETS = [
  'ingest-secret',
  'second-token',
  'https://hooks.example.com/services/T000/B000/XXXX',
  'key-123456',
  'pa55word',
  'Bearer header-secret',
  'basic-secret',
  'proxy-secret',
  'tok%2Fen-9',
  'tok/en-9',
  'fn-code',
];

describe('renderConfig', () => {
  it('masks every secret and keeps everything else readable', () => {
    const text = renderConfig(loadExample(), types);
    for (const secret of SECRETS) assert.ok(!text.includes(secret), `${secret} leaked into:\n${text}`);
    const shown = parse(text) as {
      listen: { body_limit: string; keep_alive_timeout: string };
      auth: { tokens: string[] };
      destinations: Record<string, unknown>[];
    };
    assert.deepEqual(shown.auth.tokens, [MASK, MASK]);
    assert.equal(shown.listen.body_limit, '2MiB');
    assert.equal(shown.listen.keep_alive_timeout, '1m15s');
    const chat = shown.destinations[0]!;
    assert.equal(chat.webhook_url, MASK);
    assert.equal(chat.api_key, MASK);
    assert.equal(
      chat.endpoint,
      `https://${MASK}@api.example.com/v1?region=eu&access_token=${MASK}&sig=&code=${MASK}`,
    );
    assert.equal(chat.channel, '#alerts');
    const request = chat.request as {
      headers: Record<string, string>;
      auth: Record<string, string>;
      proxy: string;
      timeout: string;
    };
    assert.deepEqual(request.headers, { Authorization: MASK, 'X-Team': 'sec' });
    assert.deepEqual(request.auth, { username: 'eyrie', password: MASK, bearer_token: '' });
    assert.equal(request.proxy, `http://${MASK}@proxy:3128`);
    assert.equal(request.timeout, '30s');
  });

  it('writes YAML that loads back as the same configuration', () => {
    const loaded = loadExample();
    const file = join(dir, 'rendered.yaml');
    writeFileSync(file, renderConfig(loaded, types));
    const again = loadConfig({ file, env: {}, destinationTypes: types });
    assert.equal(again.format, 'native');
    const { listen, delivery, destinations } = again.config;
    assert.deepEqual(listen, loaded.config.listen);
    assert.deepEqual(delivery, loaded.config.delivery);
    assert.deepEqual(destinations[0]?.queue, loaded.config.destinations[0]?.queue);
    assert.deepEqual(destinations[0]?.retry, loaded.config.destinations[0]?.retry);
  });

  it('shows a file mode in octal, as it is written, and loads it back', () => {
    const file = join(dir, 'mode.yaml');
    writeFileSync(
      file,
      `destinations:\n  - name: archive\n    type: file\n    path: ${join(dir, 'out.ndjson')}\n    mode: 0o600\n`,
    );
    const fileTypes = new Map([['file', fileDestination]]);
    const text = renderConfig(loadConfig({ file, env: {}, destinationTypes: fileTypes }), fileTypes);
    assert.match(text, /^ {4}mode: 0o600$/m);
    writeFileSync(file, text);
    assert.equal(
      loadConfig({ file, env: {}, destinationTypes: fileTypes }).config.destinations[0]?.options.mode,
      0o600,
    );
  });
});

describe('secretValues', () => {
  it('lists every secret, for log redaction', () => {
    const found = secretValues(loadExample().config, types);
    for (const secret of SECRETS) assert.ok(found.includes(secret), `missing ${secret}`);
    assert.ok(!found.includes('#alerts'));
    assert.ok(!found.includes('eyrie'));
    assert.ok(!found.includes('eu'));
    assert.ok(!found.includes(''));
  });
});
