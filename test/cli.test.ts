import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { eyrieCli, spawnEyrie, type EyrieProcess } from './helpers/eyrie-process.ts';
import { startIngest, type TestIngest } from './helpers/ingest.ts';
import { generateEvents } from './helpers/events.ts';
import { tempDir, writeConfig } from './helpers/config-file.ts';
import { createLogger } from '../src/util/logger.ts';
import { stringifyJson } from '../src/event/json.ts';
import { metricValue, sleep, waitUntil } from './helpers/delivery.ts';
import { freePort } from './helpers/prometheus.ts';
import { openSqlite } from '../src/store/sqlite.ts';

function run(
  args: string[],
  input?: string,
  env: NodeJS.ProcessEnv = {},
  /** Killed (SIGTERM) after this long, for a test of something that must not hang. */
  timeoutMs?: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...eyrieCli, ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('eyrie send', { timeout: 120_000 }, () => {
  let ingest: TestIngest;
  before(async () => {
    ingest = await startIngest();
  });
  after(() => ingest.close());

  it('posts an NDJSON file in batches and sums up accepted and rejected events', async () => {
    const dir = tempDir();
    const file = join(dir, 'events.ndjson');
    const good = generateEvents(1200, { seed: 41 });
    writeFileSync(file, [...good.slice(0, 600), '{"rule":"broken"}', ...good.slice(600)].join('\n') + '\n');
    const before = ingest.router.events.length;
    const res = await run(['send', file, '--url', ingest.url, '--batch', '250', '--no-progress']);
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stdout, /sent 1201, accepted 1200, rejected 1, failed 0/);
    assert.match(res.stderr, /missing "priority"/);
    assert.equal(ingest.router.events.length, before + 1200);
  });

  it('reads a JSON array file, keeping 64-bit numbers exact', async () => {
    const dir = tempDir();
    const file = join(dir, 'events.json');
    const lines = generateEvents(20, { seed: 43 });
    writeFileSync(file, `[\n${lines.join(',\n')}\n]\n`);
    const before = ingest.router.events.length;
    const res = await run(['send', file, '--url', ingest.url, '--no-progress']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /sent 20, accepted 20, rejected 0, failed 0/);
    const raw = /"evt\.time":(\d+)/.exec(lines.find((l) => l.includes('"evt.time"'))!)![1]!;
    const sent = ingest.router.events
      .slice(before)
      .flatMap((e) =>
        e.output_fields['evt.time'] === undefined ? [] : [stringifyJson(e.output_fields['evt.time'])],
      );
    assert.ok(sent.includes(raw), `evt.time ${raw} arrived exact`);
  });

  it('streams stdin one event per request (Falco program_output) until end of file', async () => {
    const lines = generateEvents(30, { seed: 47 });
    const before = ingest.router.events.length;
    const res = await run(['send', '-', '--url', ingest.url, '--no-progress'], lines.join('\n') + '\n');
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /sent 30, accepted 30/);
    assert.equal(ingest.router.events.length, before + 30);
  });

  it('sends the test event without a file, and reports a server that is down as failed', async () => {
    const res = await run(['send', '--url', ingest.url, '--no-progress']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(ingest.router.events.at(-1)!.rule, 'Test rule');
    const down = await run(['send', '--url', 'http://127.0.0.1:9/', '--no-progress']);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /failed 1/);
  });
});

describe('eyrie check and version', () => {
  it('exits 1 naming file:line:column for a bad config, 0 and masked secrets for a good one', async () => {
    const dir = tempDir();
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'listen:\n  port: 70000\ndestinations:\n  - name: a\n    type: webhook\n    address: http://x/\n    filter: { minimum_priority: warn }\n',
    );
    const res = await run(['check', '-c', bad]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, new RegExp(`${bad}:2:9: listen\\.port`));
    assert.match(res.stderr, /did you mean "warning"\?/);
    const good = join(dir, 'good.yaml');
    writeFileSync(
      good,
      'auth:\n  tokens: ["${INGEST_TOKEN}"]\ndestinations:\n  - name: hook\n    type: webhook\n    address: https://user:pa55word@hooks.example.com/x\n',
    );
    const ok = await run(['check', '-c', good], undefined, { INGEST_TOKEN: 'very-secret-token' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(ok.stdout, /very-secret-token|pa55word/);
    assert.match(ok.stdout, /name: hook/);
  });

  it('refuses header names and values undici cannot send, at file:line:column', async () => {
    const dir = tempDir();
    const file = join(dir, 'headers.yaml');
    writeFileSync(
      file,
      'destinations:\n  - name: hook\n    type: webhook\n    address: http://x/\n    custom_headers:\n      "Bad Name": x\n    request:\n      headers:\n        X-Token: |\n          abc\n        Good: ok\n',
    );
    const res = await run(['check', '-c', file]);
    assert.equal(res.code, 1, res.stderr);
    assert.match(
      res.stderr,
      new RegExp(
        `${file}:6:7: destinations\\[0\\]\\.custom_headers\\["Bad Name"\\]: key "Bad Name" must be a header name`,
      ),
    );
    assert.match(
      res.stderr,
      new RegExp(
        `${file}:9:18: destinations\\[0\\]\\.request\\.headers\\.X-Token: must be a header value on one line`,
      ),
    );
    assert.doesNotMatch(res.stderr, /Good/);
  });

  it('check refuses what building the destinations would, located, and creates nothing', async () => {
    const dir = tempDir();
    const notADir = join(dir, 'plain-file');
    writeFileSync(notADir, 'x');
    const native = join(dir, 'build.yaml');
    writeFileSync(
      native,
      [
        /* 1 */ 'storage:',
        /* 2 */ `  path: ${notADir}/data`,
        /* 3 */ 'destinations:',
        /* 4 */ '  - name: a',
        /* 5 */ '    type: webhook',
        /* 6 */ '    address: http://127.0.0.1:9/',
        /* 7 */ `    request: { tls: { ca_file: ${dir}/missing-ca.pem } }`,
        /* 8 */ '  - name: e',
        /* 9 */ '    type: eyrie',
        /* 10 */ '    url: "http://[::1/x"',
        /* 11 */ '  - name: f',
        /* 12 */ '    type: file',
        /* 13 */ `    path: ${notADir}/out.ndjson`,
        /* 14 */ '  - name: g',
        /* 15 */ '    type: file',
        /* 16 */ `    path: ${dir}/new/dir/out.ndjson`,
        '',
      ].join('\n'),
    );
    const res = await run(['check', '-c', native]);
    assert.equal(res.code, 1, res.stderr);
    assert.deepEqual(res.stderr.trim().split('\n'), [
      `${native}:7:32: destinations[0].request.tls.ca_file: cannot read "${dir}/missing-ca.pem": ENOENT: no such file or directory, open '${dir}/missing-ca.pem'`,
      `${native}:10:10: destinations[1].url: "http://[::1/x" is not a valid URL`,
      `${native}:13:11: destinations[2].path: ${notADir} exists and is not a directory`,
      `${native}:2:9: storage.path: ${notADir} exists and is not a directory`,
    ]);
    assert.equal(existsSync(join(dir, 'new')), false, 'check made no directory for the file destination');
    // A Falcosidekick file: located at its own key.
    const sidekick = join(dir, 'sidekick.yaml');
    writeFileSync(
      sidekick,
      `tlsclient:\n  cacertfile: ${dir}/missing-ca.pem\nwebhook:\n  address: http://127.0.0.1:9/\n`,
    );
    const res2 = await run(['check', '-c', sidekick]);
    assert.equal(res2.code, 1);
    assert.match(res2.stderr, new RegExp(`${sidekick}:2:15: tlsclient\\.cacertfile: cannot read`));
    // With mutualtls, ca_file lists tlsclient's CA and the mutual TLS one: each located at its own key.
    const mutual = join(dir, 'mutual.yaml');
    writeFileSync(
      mutual,
      `tlsclient:\n  cacertfile: ${dir}/missing-ca.pem\nmutualtlsfilespath: ${dir}/mtls\nwebhook:\n  address: https://127.0.0.1:9/\n  mutualtls: true\n`,
    );
    const res3 = await run(['check', '-c', mutual]);
    assert.equal(res3.code, 1);
    assert.match(
      res3.stderr,
      new RegExp(`^${mutual}:2:15: tlsclient\\.cacertfile: cannot read "${dir}/missing-ca.pem"`, 'm'),
    );
  });

  it('check refuses two listeners on one port and address, located; distinct addresses and port 0 are fine', async () => {
    const dir = tempDir();
    const file = join(dir, 'ports.yaml');
    writeFileSync(
      file,
      [
        /* 1 */ 'listen: { port: 9376 }',
        /* 2 */ 'exporter:',
        /* 3 */ '  enabled: true',
        /* 4 */ '  address: 127.0.0.1',
        /* 5 */ '  port: 9376',
        /* 6 */ '  probes: { address: 127.0.0.1, port: 9376 }',
        '',
      ].join('\n'),
    );
    const res = await run(['check', '-c', file]);
    assert.equal(res.code, 1, res.stderr);
    assert.deepEqual(res.stderr.trim().split('\n'), [
      `${file}:5:9: exporter.port: 9376 is also listen.port: two listeners cannot share a port and address`,
      `${file}:6:39: exporter.probes.port: 9376 is also listen.port: two listeners cannot share a port and address`,
    ]);
    writeFileSync(
      file,
      'listen: { address: 127.0.0.1, port: 0 }\nexporter: { enabled: true, address: 127.0.0.2, port: 9376, probes: { address: 127.0.0.1, port: 0 } }\n',
    );
    const fine = await run(['check', '-c', file]);
    assert.equal(fine.code, 0, fine.stderr);
    // 0.0.0.0 is every IPv4 address only: ::1 binds beside it on the same port (an IPv4-mapped one does not).
    writeFileSync(
      file,
      "listen: { address: 0.0.0.0, port: 9376 }\nexporter: { enabled: true, address: '::1', port: 9376, probes: { address: '::ffff:127.0.0.1', port: 9376 } }\n",
    );
    const families = await run(['check', '-c', file]);
    assert.equal(families.code, 1, families.stderr);
    assert.deepEqual(families.stderr.trim().split('\n'), [
      `${file}:2:101: exporter.probes.port: 9376 is also listen.port: two listeners cannot share a port and address`,
    ]);
  });

  it("takes Falcosidekick's --config-file flag for serve (its chart's extraArgs)", async () => {
    const dir = tempDir();
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'listenport: 99999\n');
    for (const args of [
      ['serve', '--config-file', file],
      ['serve', `--config-file=${file}`],
    ]) {
      const res = await run(args, undefined, {}, 20_000);
      assert.equal(res.code, 1, res.stderr);
      assert.match(res.stderr, new RegExp(`^${file}:1:13: listenport: `, 'm'));
    }
  });

  it('does not need storage.path when nothing keeps state there (the exporter, memory-only destinations)', async () => {
    const dir = tempDir();
    const notADir = join(dir, 'plain-file');
    writeFileSync(notADir, '');
    const file = join(dir, 'memory-only.yaml');
    writeFileSync(
      file,
      `storage:\n  path: ${notADir}\ndestinations:\n  - name: out\n    type: stdout\n    durability: memory\n`,
    );
    const res = await run(['check', '-c', file]);
    assert.equal(res.code, 0, res.stderr);
    // falco-exporter's chart runs on a read-only root file system, the image's /data included.
    const exporter = await run(
      ['exporter', '--listen-address', '127.0.0.1:0', '--probes-listen-address', '127.0.0.1:0'],
      undefined,
      { EYRIE_STORAGE__PATH: notADir },
      6000,
    );
    assert.doesNotMatch(exporter.stderr, /storage\.path/);
    assert.equal(exporter.code, 0, exporter.stderr);
  });

  it('refuses an address Node cannot parse at check, located, without its credentials', async () => {
    const dir = tempDir();
    const file = join(dir, 'address.yaml');
    writeFileSync(
      file,
      `storage:\n  path: ${join(dir, 'data')}\ndestinations:\n  - name: hook\n    type: webhook\n    address: http://alice:S3cretPassw0rd@hooks.example.com:99999/falco\n`,
    );
    for (const command of ['check', 'serve']) {
      const res = await run([command, '-c', file]);
      assert.equal(res.code, 1, res.stderr);
      assert.equal(
        res.stderr,
        `${file}:6:14: destinations[0].address: "http://[redacted]@hooks.example.com:99999/falco" is not a valid URL\n`,
        command,
      );
    }
  });

  it('locates what only compiling finds (CEL, templates, TLS files) at file:line:column, in check and serve alike', async () => {
    const dir = tempDir();
    const native = join(dir, 'native.yaml');
    writeFileSync(
      native,
      'enrich:\n  templated_fields:\n    foo: "{{ .bar "\ndestinations:\n  - name: a\n    type: stdout\n  - name: hook\n    type: webhook\n    address: http://x/\n    filter:\n      cel: \'event.rule ==\'\n  - name: big\n    type: stdout\n    filter:\n      fields:\n        evt.time: { in: [1, 1234567890123456789] }\n',
    );
    for (const command of ['check', 'serve']) {
      const res = await run([command, '-c', native]);
      assert.equal(res.code, 1, res.stderr);
      assert.match(
        res.stderr,
        new RegExp(`${native}:3:10: enrich\\.templated_fields\\.foo: template: foo:1:1: unclosed action`),
      );
      assert.match(
        res.stderr,
        new RegExp(`${native}:11:12: destinations\\[1\\]\\.filter\\.cel: invalid CEL expression`),
      );
      // A condition keeps the number as written (YAML would round it to ...800): nothing to refuse.
      assert.doesNotMatch(res.stderr, /destinations\[2\]/);
    }
    // A Falcosidekick file: the key as written there.
    const sidekick = join(dir, 'sidekick.yaml');
    writeFileSync(sidekick, 'templatedfields:\n  foo: "{{ .bar "\nwebhook:\n  address: http://x/\n');
    const res = await run(['check', '-c', sidekick]);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      new RegExp(`${sidekick}:2:8: templatedfields\\.foo: template: foo:1:1: unclosed action`),
    );
  });

  it('prints its version', async () => {
    const res = await run(['version']);
    assert.equal(res.code, 0);
    assert.match(res.stdout, /^eyrie \d+\.\d+\.\d+ \(node v\d+/);
  });

  it('under a low open-file limit says so in one line instead of a module loader stack trace', () => {
    const bin = fileURLToPath(new URL('../bin/eyrie.js', import.meta.url));
    // Node 20's loader opens a hundred files at once and fails at 60; Node 24's loads within it.
    // Without the coverage collection of `npm test` (Node hands NODE_V8_COVERAGE to every child it
    // spawns, so the shell unsets it): its write at exit would fail with EMFILE too.
    const script = 'unset NODE_V8_COVERAGE; ulimit -n 60 && exec "$0" "$1" version';
    const res = spawnSync('sh', ['-c', script, process.execPath, bin], { encoding: 'utf8', timeout: 60_000 });
    if (res.status === 0) {
      assert.match(res.stdout, /^eyrie \d+\.\d+\.\d+/);
      return;
    }
    assert.equal(res.status, 1, res.stderr);
    assert.match(
      res.stderr,
      /^eyrie: too many open files \(EMFILE: [^\n]*\): raise the open-file limit \(ulimit -n\) to at least 1024\n$/,
    );
  });
});

/** A config with one durable destination (so a journal is opened) in a fresh directory. */
function durableConfig(): { file: string; dir: string } {
  const dir = tempDir();
  return writeConfig(
    `listen: { address: 127.0.0.1, port: 0 }\ndestinations:\n  - name: archive\n    type: file\n    path: ${join(dir, 'events.ndjson')}\n`,
    dir,
  );
}

describe('eyrie serve', { timeout: 120_000 }, () => {
  it('refuses to start on a storage.path whose journal another process has open', async () => {
    const { file, dir } = durableConfig();
    const first = await spawnEyrie(file);
    try {
      const second = await run(['serve', '-c', file]);
      assert.equal(second.code, 1);
      assert.match(
        second.stderr,
        new RegExp(`storage.path ${join(dir, 'data')} is in use by another Eyrie process`),
      );
    } finally {
      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0);
    }
  });

  it('two Eyries forwarding to each other with dedup by uuid: each event makes one turn of the loop, the test event too', async () => {
    const ports = [await freePort(), await freePort()];
    const eyries: EyrieProcess[] = [];
    try {
      for (const [own, peer] of [ports, [ports[1], ports[0]]]) {
        const dir = tempDir();
        const { file } = writeConfig(
          `listen: { address: 127.0.0.1, port: ${own} }\nstorage: { path: ${join(dir, 'data')} }\n` +
            `destinations:\n  - name: peer\n    type: eyrie\n    url: http://127.0.0.1:${peer}/\n` +
            `    dedup: { window: 10m, fields: [uuid] }\n    batch: { timeout: 50ms }\n`,
          dir,
        );
        eyries.push(await spawnEyrie(file));
      }
      const [a, b] = eyries as [EyrieProcess, EyrieProcess];
      assert.equal(
        (await fetch(`${a.url}/`, { method: 'POST', body: generateEvents(1, { seed: 4 })[0] })).status,
        200,
      );
      assert.equal((await fetch(`${a.url}/test`, { method: 'POST' })).status, 200);
      const decisions = async (e: EyrieProcess) => {
        const text = await (await fetch(`${e.url}/metrics`)).text();
        return ['routed', 'deduplicated'].map((decision) =>
          metricValue(text, 'eyrie_routing_events_total', { destination: 'peer', decision }),
        );
      };
      // Each event: routed by a and b once, back at a and dropped there.
      let last: number[][] = [];
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        last = [await decisions(a), await decisions(b)];
        if (last[0]![1] === 2) break;
        await sleep(100);
      }
      assert.deepEqual(last, [
        [2, 2],
        [2, 0],
      ]);
      // Still so once every send has had its time: the loop has ended.
      await sleep(1000);
      assert.deepEqual(
        [await decisions(a), await decisions(b)],
        [
          [2, 2],
          [2, 0],
        ],
      );
    } finally {
      for (const e of eyries) e.child.kill('SIGTERM');
      for (const e of eyries) assert.equal(await e.exited, 0);
    }
  });

  it('evaluates CEL time functions in UTC whatever the host time zone (the CEL library uses local time)', async () => {
    const dir = tempDir();
    const out = join(dir, 'events.ndjson');
    // 2026-07-01 is day 181; with TZ=America/New_York (daylight saving) the library said 180.
    const { file } = writeConfig(
      `listen: { address: 127.0.0.1, port: 0 }\ndestinations:\n  - name: summer\n    type: file\n    path: ${out}\n    filter: { cel: 'timestamp(event.time).getDayOfYear() == 181' }\n`,
      dir,
    );
    const eyrie = await spawnEyrie(file, { TZ: 'America/New_York' });
    try {
      const event = {
        ...(JSON.parse(generateEvents(1, { seed: 3 })[0]!) as object),
        time: '2026-07-01T12:00:00Z',
      };
      const res = await fetch(`${eyrie.url}/`, { method: 'POST', body: JSON.stringify(event) });
      assert.equal(res.status, 200);
      await waitUntil(
        () => existsSync(out) && readFileSync(out, 'utf8').includes('2026-07-01T12:00:00Z'),
        10_000,
        () => `not delivered: ${eyrie.output()}`,
      );
    } finally {
      eyrie.child.kill('SIGTERM');
      assert.equal(await eyrie.exited, 0);
    }
  });

  it('exits 1 naming the journal file when it is not a SQLite database', async () => {
    const { file, dir } = durableConfig();
    mkdirSync(join(dir, 'data'));
    writeFileSync(
      join(dir, 'data', 'eyrie.db'),
      'not a database, but long enough to be read as a header '.repeat(100),
    );
    const result = await run(['serve', '-c', file]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(`cannot open the journal ${join(dir, 'data', 'eyrie.db')}: file is not a database`),
    );
  });

  it('exits 1 naming the journal file when a newer version of Eyrie wrote it', async () => {
    const { file, dir } = durableConfig();
    mkdirSync(join(dir, 'data'));
    const db = openSqlite(join(dir, 'data', 'eyrie.db'));
    db.exec('PRAGMA user_version = 99');
    db.close();
    const result = await run(['serve', '-c', file], undefined, {}, 20_000);
    assert.equal(result.code, 1, `still running after 20 s, or: ${result.stderr}`);
    assert.match(
      result.stderr,
      new RegExp(
        `cannot open the journal ${join(dir, 'data', 'eyrie.db')}: it was written by a newer version of Eyrie \\(journal format 99`,
      ),
    );
  });

  it('exits 1 at once on a storage.path under /proc (where a recursive mkdir would loop forever)', async () => {
    const dir = tempDir();
    const { file } = writeConfig(
      `listen: { address: 127.0.0.1, port: 0 }\nstorage:\n  path: /proc/eyrie-no-such/data\ndestinations:\n  - name: archive\n    type: file\n    path: ${join(dir, 'events.ndjson')}\n`,
      dir,
    );
    const result = await run(['serve', '-c', file], undefined, {}, 20_000);
    assert.equal(result.code, 1, `still running after 20 s, or: ${result.stderr}`);
    assert.match(
      result.stderr,
      /storage\.path \/proc\/eyrie-no-such\/data: cannot create the directory: ENOENT[^\n]*'\/proc\/eyrie-no-such'/,
    );
  });

  it('stops cleanly (exit 0) on a SIGTERM that comes while its modules still load', async () => {
    const { file, dir } = durableConfig();
    // bin/eyrie.js, the installed command, copied beside a stand-in for the CLI it loads: the stand-in
    // says it has started, waits, then loads the real CLI. The signal comes during that wait, after
    // bin/eyrie.js's first lines and before the CLI's own handlers, whatever the machine's speed.
    const root = fileURLToPath(new URL('..', import.meta.url));
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist', 'cli'), { recursive: true });
    copyFileSync(join(root, 'bin', 'eyrie.js'), join(dir, 'bin', 'eyrie.js'));
    const built = join(root, 'dist', 'cli', 'main.js');
    const load = existsSync(built)
      ? `await import(${JSON.stringify(pathToFileURL(built).href)});`
      : // Not built: the sources through tsx, resolved from the repository.
        `const { createRequire } = await import('node:module');
const api = createRequire(${JSON.stringify(join(root, 'package.json'))}).resolve('tsx/esm/api');
(await import(api)).register();
await import(${JSON.stringify(pathToFileURL(join(root, 'src', 'cli', 'main.ts')).href)});`;
    writeFileSync(
      join(dir, 'dist', 'cli', 'main.js'),
      `process.stderr.write('loading the CLI\\n');\nawait new Promise((resolve) => setTimeout(resolve, 1000));\n${load}\n`,
    );
    const child = spawn(process.execPath, [join(dir, 'bin', 'eyrie.js'), 'serve', '-c', file], {
      cwd: root,
      env: { ...process.env, EYRIE_LOG__LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<string>((r) => child.on('exit', (code, signal) => r(`${code ?? signal}`)));
    await waitUntil(
      () => out.includes('loading the CLI'),
      20_000,
      () => out,
    );
    child.kill('SIGTERM');
    assert.equal(await exited, '0', out);
    assert.match(
      out,
      /"signal":"SIGTERM","whileLoading":true,"msg":"shutting down"[^]*"msg":"eyrie is listening"[^]*"msg":"stopped"/,
    );
  });

  it('stops cleanly (exit 0) on SIGHUP, saying it does not reload its configuration', async () => {
    const { file } = durableConfig();
    const eyrie = await spawnEyrie(file);
    // A supervisor's reload, or the terminal it ran in closing: Node's default action ended it at once.
    eyrie.child.kill('SIGHUP');
    assert.equal(await eyrie.exited, 0, eyrie.output());
    assert.match(
      eyrie.output(),
      /SIGHUP: Eyrie does not reload its configuration; it stops cleanly[^]*"signal":"SIGHUP","msg":"shutting down"[^]*"msg":"stopped"/,
    );
  });

  it('exits 0 on SIGTERM when the pipe its logs go to was closed (EPIPE)', async () => {
    const { file } = durableConfig();
    const eyrie = await spawnEyrie(file);
    // As when journald or a log shipper goes away: the next log line (the shutdown's) gets EPIPE.
    eyrie.child.stdout!.destroy();
    eyrie.child.stderr!.destroy();
    eyrie.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      eyrie.exited,
      new Promise<string>((r) => (timer = setTimeout(() => r('still running 15 s after SIGTERM'), 15_000))),
    ]);
    clearTimeout(timer);
    if (outcome === 'still running 15 s after SIGTERM') eyrie.child.kill('SIGKILL');
    assert.equal(outcome, 0);
  });
});

describe('logger', () => {
  it('redacts secret values wherever they appear and authorization headers', async () => {
    let out = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const logger = createLogger({ level: 'info', format: 'json' }, ['hunter2-token'], sink);
    logger.info(
      { url: 'https://x/?key=hunter2-token', req: { headers: { authorization: 'Bearer abc' } } },
      'sending with hunter2-token',
    );
    await new Promise((r) => setImmediate(r));
    assert.doesNotMatch(out, /hunter2-token/);
    assert.doesNotMatch(out, /Bearer abc/);
    assert.match(out, /\[redacted\]/);
  });
});
