import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeadLetters } from '../src/delivery/dead-letters.ts';
import { hasTempDirectory } from '../src/store/sqlite.ts';
import { eyrieCli } from './helpers/eyrie-process.ts';
import { testTempDir } from './helpers/config-file.ts';

/**
 * A data directory holding, for each of `destinations` destinations, entries queued and as many dead
 * letters. A replay of them adds index entries after each destination's queued ones: all over the
 * indexes, rewriting far more than the 64 KiB of pages a statement journal keeps in memory.
 */
function withDeadLetters(t: TestContext, destinations: number, each: number): string {
  const dir = testTempDir(t, 'eyrie-ro-');
  const dlq = new DeadLetters(dir);
  const event = dlq.db.prepare("INSERT INTO events (uuid, body, received_at, refs) VALUES ('u', '{}', 0, 2)");
  const queued = dlq.db.prepare(
    'INSERT INTO deliveries (destination, event_id, bytes, enqueued_at, due_at) VALUES (?, ?, 2, 0, 0)',
  );
  const dead = dlq.db.prepare(
    "INSERT INTO dead_letters (destination, event_id, bytes, enqueued_at, failed_at, attempts, reason, error) VALUES (?, ?, 2, 0, 0, 1, 'permanent_400', 'no')",
  );
  dlq.db.transaction(() => {
    for (let d = 0; d < destinations; d++) {
      for (let i = 0; i < each; i++) {
        const id = event.run().lastInsertRowid;
        queued.run(`d${d}`, id);
        dead.run(`d${d}`, id);
      }
    }
  })();
  dlq.close();
  return dir;
}

/**
 * Kubernetes' readOnlyRootFilesystem: SQLite finds no writable directory for its temporary files
 * (/var/tmp, /tmp, the working directory), and only storage.path is a writable mount.
 */
describe('on a read-only root file system (only storage.path writable)', () => {
  it("finds no directory for SQLite's temporary files when none it would use is a writable directory", (t) => {
    const dir = testTempDir(t, 'eyrie-ro-');
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    assert.equal(hasTempDirectory([undefined, '', file, join(dir, 'missing')]), false);
    assert.equal(hasTempDirectory([undefined, join(dir, 'missing'), dir]), true);
  });

  it('eyrie dlq replay puts thousands of dead letters back on queues that hold entries (a statement journal past 64 KiB)', async (t) => {
    if (process.getuid?.() !== 0 || process.platform !== 'linux')
      return t.skip('needs root, to mount / read-only in a mount namespace');
    const dir = withDeadLetters(t, 200, 50);
    // / read-only for the child only (its own mount namespace), storage.path bound writable over it.
    const script =
      'mount --make-rprivate / && mount --bind "$1" "$1" && mount -o remount,bind,ro / && shift && exec "$@"';
    const probe = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', dir, 'true']);
    if (probe.error !== undefined || probe.status !== 0)
      return t.skip(`cannot mount in a namespace here: ${probe.error?.message ?? probe.stderr.toString()}`);
    const cwd = fileURLToPath(new URL('..', import.meta.url));
    const res = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'unshare',
        [
          '-m',
          'sh',
          '-c',
          script,
          'sh',
          dir,
          process.execPath,
          ...eyrieCli,
          'dlq',
          'replay',
          '--data-dir',
          dir,
        ],
        { cwd, encoding: 'utf8', timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /replayed 10000 dead letters/);
  });
});
