import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { startEyrie } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { testTempDir, writeConfig } from './helpers/config-file.ts';
import { silentLogger } from './helpers/ingest.ts';
import { sleep } from './helpers/delivery.ts';

const event = (rule: string) =>
  JSON.stringify({ output: 'x', priority: 'Warning', rule, time: '2026-01-01T00:00:00Z', output_fields: {} });

/**
 * Kubernetes routes new connections to a terminating pod for a second or more after SIGTERM, and
 * Falco drops an alert whose post is refused (no retry): listen.shutdown_delay keeps accepting meanwhile.
 */
describe('listen.shutdown_delay', () => {
  it('answers 200 to a new connection after close() begins, journals it, and reports not ready', async (t) => {
    const dir = testTempDir(t);
    const { file } = writeConfig(
      `
listen: { address: 127.0.0.1, port: 0, shutdown_delay: 600ms }
log: { level: warn }
destinations:
  - name: archive
    type: file
    path: ${join(dir, 'events.ndjson')}
`,
      dir,
    );
    const eyrie = await startEyrie(loadConfig({ file, env: {} }).config, silentLogger);
    const url = eyrie.addresses.ingest ?? '';
    const started = Date.now();
    const closed = eyrie.close();
    await sleep(100);
    assert.equal(eyrie.ready(), false);
    // A new connection (the Service still routes here), not one kept alive from before the signal.
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: event('after SIGTERM'),
    });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    await closed;
    assert.ok(Date.now() - started >= 600, 'closed before the delay');
    assert.match(readFileSync(join(dir, 'events.ndjson'), 'utf8'), /after SIGTERM/);
  });
});
