import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/config-file.ts';
import { loadConfig } from '../src/config/load.ts';

/**
 * deploy/image/entrypoint, with an `eyrie` on PATH that prints what it was run with: flags alone (the
 * Falcosidekick chart's extraArgs) go to `eyrie serve`, anything else runs as given.
 */
describe("the image's entrypoint", () => {
  const entrypoint = fileURLToPath(new URL('../deploy/image/entrypoint', import.meta.url));
  const bin = join(tempDir('eyrie-entrypoint-'), 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'eyrie'), '#!/bin/sh\necho "eyrie $*"\n', { mode: 0o755 });
  writeFileSync(join(bin, 'falco-exporter'), '#!/bin/sh\necho "falco-exporter $*"\n', { mode: 0o755 });
  const run = (args: string[]) => {
    const result = spawnSync(entrypoint, args, {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    });
    assert.equal(result.status, 0, result.stderr);
    return result.stdout.trim();
  };

  const cases: [string[], string][] = [
    // The image's CMD.
    [['eyrie', 'serve'], 'eyrie serve'],
    // Falcosidekick's chart: `args: {{ .Values.config.extraArgs }}` after its image's entrypoint.
    [['-c', '/etc/falcosidekick/config.yaml'], 'eyrie serve -c /etc/falcosidekick/config.yaml'],
    [
      ['--config-file=/etc/falcosidekick/config.yaml'],
      'eyrie serve --config-file=/etc/falcosidekick/config.yaml',
    ],
    // falco-exporter's chart: args that start with the program.
    [
      [join(bin, 'falco-exporter'), '--client-socket=unix:///run/falco/falco.sock'],
      'falco-exporter --client-socket=unix:///run/falco/falco.sock',
    ],
    [['eyrie', 'dlq', 'list'], 'eyrie dlq list'],
  ];
  for (const [args, expected] of cases) {
    it(`${JSON.stringify(args)} runs ${expected}`, () => {
      assert.equal(run(args), expected);
    });
  }
});

/** deploy/image/Dockerfile's `ENV` settings: an unknown EYRIE_ variable would stop every start of the image. */
describe("the image's environment", () => {
  const dockerfile = readFileSync(
    fileURLToPath(new URL('../deploy/image/Dockerfile', import.meta.url)),
    'utf8',
  );
  const env = Object.fromEntries(
    [...dockerfile.matchAll(/^ENV (.+)$/gm)].flatMap((m) =>
      (m[1] ?? '').split(' ').map((pair) => pair.split('=') as [string, string]),
    ),
  );

  it('is a valid config: the journal in /data, accepting 3 s after SIGTERM while Kubernetes stops routing', () => {
    const { config } = loadConfig({ env });
    assert.equal(config.storage.path, '/data');
    assert.equal(config.listen.shutdown_delay, 3000);
  });
});
