import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataDirLock } from './data-dir-lock.ts';
import { testTempDir } from '../../test/helpers/config-file.ts';
import { runUnprivileged } from '../../test/helpers/eyrie-process.ts';

const lockModule = fileURLToPath(new URL('./data-dir-lock.ts', import.meta.url));

describe('DataDirLock', () => {
  it('a lock it cannot take for another reason than a holder: the message names the lock file', (t) => {
    const dir = testTempDir(t, 'eyrie-lock-');
    mkdirSync(join(dir, 'eyrie.lock')); // as a full disk or a botched restore leaves it: not openable
    assert.throws(
      () => new DataDirLock(dir),
      (err: Error) => {
        assert.equal(
          err.message,
          `storage.path ${dir}: cannot lock ${join(dir, 'eyrie.lock')}: unable to open database file`,
        );
        return true;
      },
    );
  });

  it('a lock file it may not write (left by root): refuses, naming the file, its owner and mode', async (t) => {
    const dir = testTempDir(t, 'eyrie-lock-');
    chmodSync(dir, 0o777);
    writeFileSync(join(dir, 'eyrie.lock'), '');
    chmodSync(join(dir, 'eyrie.lock'), 0o444);
    // SQLite would open it read-only without a word, and BEGIN EXCLUSIVE would then lock nothing: a
    // second process could run on the same journal. Root may write anything: run as nobody then.
    const res = await runUnprivileged(t, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `const { DataDirLock } = await import(${JSON.stringify(lockModule)}); try { new DataDirLock(${JSON.stringify(dir)}); console.log('locked'); } catch (err) { console.log(err.message); }`,
    ]);
    if (res === undefined) return;
    assert.match(
      res.stdout,
      new RegExp(
        `^storage.path ${dir}: cannot lock ${join(dir, 'eyrie.lock')}: EACCES: permission denied, .*\\(the file is owned by uid \\d+ with mode 0444, this process runs as uid \\d+\\)`,
      ),
    );
  });

  it('refuses a second holder, naming the directory, until the first releases it', (t) => {
    const dir = testTempDir(t, 'eyrie-lock-');
    const first = new DataDirLock(dir);
    assert.throws(
      () => new DataDirLock(dir),
      (err: Error) => {
        assert.match(err.message, new RegExp(`storage.path ${dir} is in use by another Eyrie process`));
        assert.match(err.message, /eyrie\.lock/);
        return true;
      },
    );
    first.release();
    first.release(); // idempotent
    const second = new DataDirLock(dir);
    second.release();
  });

  it('is held across processes, and a holder killed with SIGKILL leaves no stale lock', async (t) => {
    const dir = testTempDir(t, 'eyrie-lock-');
    const holder = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { DataDirLock } = await import(${JSON.stringify(lockModule)}); new DataDirLock(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((r) => holder.on('exit', r));
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (c: Buffer) => c.toString().includes('locked') && resolve());
      holder.on('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
    });
    try {
      assert.throws(() => new DataDirLock(dir), /in use by another Eyrie process/);
    } finally {
      holder.kill('SIGKILL');
      await exited;
    }
    const after = new DataDirLock(dir);
    after.release();
  });
});
