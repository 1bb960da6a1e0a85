import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import fs from 'node:fs';
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { fileDestination, type FileOptions } from './file.ts';
import type { Destination, DestinationContext } from './types.ts';
import type { RequestConfig } from '../config/types.ts';
import { parseFalcoEvent, type FalcoEvent } from '../event/falco-event.ts';
import { RetryableError } from '../delivery/errors.ts';
import { loadConfig } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';

const context: DestinationContext = {
  name: 'file-test',
  logger: pino({ level: 'silent' }),
  request: {} as RequestConfig,
  dataDir: tmpdir(),
};

/** Event `i`: every line has the same length (zero-padded index, i < 10000). */
function event(i: number): FalcoEvent {
  const n = String(i).padStart(4, '0');
  return parseFalcoEvent(
    `{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f${n}","output":"event ${n} <x>","priority":"Warning","rule":"r","time":"2026-01-01T00:00:00.123456789Z","output_fields":{"evt.time":1767225600123456789,"n":"${n}"},"tags":["t"],"hostname":"h"}`,
  );
}

function line(i: number): string {
  const n = String(i).padStart(4, '0');
  return `{"uuid":"3f1b0a3c-9f0e-4d4e-8a47-0c5e3f9f${n}","output":"event ${n} \\u003cx\\u003e","priority":"Warning","rule":"r","time":"2026-01-01T00:00:00.123456789Z","output_fields":{"evt.time":1767225600123456789,"n":"${n}"},"source":"syscalls","tags":["t"],"hostname":"h"}`;
}

const LINE_BYTES = Buffer.byteLength(line(0)) + 1;

function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, k) => from + k);
}

/** The event numbers in a file, checking every line is a whole, exact event line. */
function numbersIn(file: string): number[] {
  const text = readFileSync(file, 'utf8');
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), `${file} ends mid-line`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((l) => {
      const n = Number((JSON.parse(l) as { output_fields: { n: string } }).output_fields.n);
      assert.equal(l, line(n));
      return n;
    });
}

describe('file destination', () => {
  let dir: string;
  let path: string;
  const open: Destination[] = [];

  function create(options: Partial<FileOptions> = {}): Destination {
    const d = fileDestination.create(
      {
        path,
        max_size: 100 * 1024 * 1024,
        rotate_every: 0,
        max_files: 5,
        mode: 0o640,
        fsync: true,
        ...options,
      },
      context,
    );
    open.push(d);
    return d;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'eyrie-file-'));
    path = join(dir, 'logs', 'events.ndjson');
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((d) => d.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('declares its batching and option defaults', () => {
    assert.deepEqual(fileDestination.batch, { max_events: 1000, max_bytes: 4 * 1024 * 1024, timeout: 200 });
    const props = (
      fileDestination.optionsSchema as unknown as { properties: Record<string, { default?: unknown }> }
    ).properties;
    assert.equal(props.max_size?.default, 100 * 1024 * 1024);
    assert.equal(props.rotate_every?.default, 0);
    assert.equal(props.max_files?.default, 5);
    assert.equal(props.mode?.default, 0o640);
    assert.equal(props.fsync?.default, true);
    assert.equal(props.path?.default, undefined);
    assert.equal(
      (fileDestination.optionsSchema as unknown as { additionalProperties: boolean }).additionalProperties,
      false,
    );
  });

  it('takes max_size and rotate_every as sizes and durations in the config, and refuses a bad one at its line', () => {
    const file = join(dir, 'eyrie.yaml');
    const yaml = (size: string, every: string): string =>
      `destinations:\n  - name: archive\n    type: file\n    path: ${join(dir, 'out.ndjson')}\n    max_size: ${size}\n    rotate_every: ${every}\n`;
    const types = new Map([['file', fileDestination]]);
    writeFileSync(file, yaml('64MiB', '24h'));
    const [archive] = loadConfig({ file, env: {}, destinationTypes: types }).config.destinations;
    assert.equal(archive?.options.max_size, 64 * 1024 * 1024);
    assert.equal(archive?.options.rotate_every, 24 * 3600 * 1000);
    writeFileSync(file, yaml('1048576', '0'));
    const [plain] = loadConfig({ file, env: {}, destinationTypes: types }).config.destinations;
    assert.equal(plain?.options.max_size, 1048576);
    assert.equal(plain?.options.rotate_every, 0);
    writeFileSync(file, yaml('big', 'daily'));
    assert.throws(
      () => loadConfig({ file, env: {}, destinationTypes: types }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.toString().includes(`${file}:5:15: destinations[0].max_size: "big" is not a size`) &&
        err.toString().includes(`${file}:6:19: destinations[0].rotate_every: "daily" is not a duration`),
    );
  });

  it("appends Falcosidekick's exact JSON, one line per event, creating the directory with the file mode", async () => {
    const d = create();
    assert.ok(existsSync(path), 'create() makes the directory and the file');
    assert.equal(statSync(path).mode & 0o777, 0o640);
    await d.send([event(1), event(2)]);
    await d.send([event(3)]);
    assert.equal(readFileSync(path, 'utf8'), `${line(1)}\n${line(2)}\n${line(3)}\n`);
    assert.match(readFileSync(path, 'utf8'), /"evt\.time":1767225600123456789,/);
  });

  it('rotates by size into path.1, path.2… without splitting or losing a line', async () => {
    const maxSize = LINE_BYTES * 5; // a batch of 2 fits twice, not three times
    const d = create({ max_size: maxSize, max_files: 10 });
    const sent: number[] = [];
    for (let b = 0; b < 6; b++) {
      const batch = range(b * 2, 2);
      await d.send(batch.map(event));
      sent.push(...batch);
    }
    assert.ok(existsSync(`${path}.1`) && existsSync(`${path}.2`));
    assert.ok(!existsSync(`${path}.3`));
    for (const f of [path, `${path}.1`, `${path}.2`])
      assert.ok(statSync(f).size <= maxSize, `${f} exceeds max_size`);
    // Oldest first: path.2, path.1, path.
    const all = [...numbersIn(`${path}.2`), ...numbersIn(`${path}.1`), ...numbersIn(path)];
    assert.deepEqual(all, sent);
    assert.deepEqual(numbersIn(path), [8, 9, 10, 11]);
  });

  it('keeps only max_files rotated files, deleting older ones and leftovers of a larger max_files, not other files', async () => {
    mkdirSync(join(dir, 'logs'), { recursive: true });
    // Left by max_files: 4, then files of other tools: logrotate's dateext and %s names, a gap.
    const others = [
      'events.ndjson.1795939000',
      'events.ndjson.20261128',
      'events.ndjson.7',
      'events.ndjson.1.gz',
    ];
    for (const name of ['events.ndjson.3', 'events.ndjson.4', ...others])
      writeFileSync(join(dir, 'logs', name), 'left over\n');
    const d = create({ max_size: LINE_BYTES, max_files: 2 });
    for (let i = 0; i < 6; i++) await d.send([event(i)]);
    const names = readdirSync(join(dir, 'logs'))
      .filter((name) => !others.includes(name))
      .sort();
    assert.deepEqual(names, ['events.ndjson', 'events.ndjson.1', 'events.ndjson.2']);
    for (const name of others) assert.equal(readFileSync(join(dir, 'logs', name), 'utf8'), 'left over\n');
    assert.deepEqual(numbersIn(path), [5]);
    assert.deepEqual(numbersIn(`${path}.1`), [4]);
    assert.deepEqual(numbersIn(`${path}.2`), [3]);
  });

  it('max_files 0 keeps no rotated file', async () => {
    const d = create({ max_size: LINE_BYTES, max_files: 0 });
    for (let i = 0; i < 3; i++) await d.send([event(i)]);
    assert.deepEqual(readdirSync(join(dir, 'logs')), ['events.ndjson']);
    assert.deepEqual(numbersIn(path), [2]);
  });

  it('puts a batch larger than max_size whole into a fresh file', async () => {
    const d = create({ max_size: LINE_BYTES * 2 });
    await d.send([event(0)]);
    await d.send(range(1, 5).map(event));
    assert.deepEqual(numbersIn(`${path}.1`), [0]);
    assert.deepEqual(numbersIn(path), [1, 2, 3, 4, 5]);
    await d.send([event(6)]); // the oversized file is rotated before the next batch
    assert.deepEqual(numbersIn(`${path}.2`), [0]);
    assert.deepEqual(numbersIn(`${path}.1`), [1, 2, 3, 4, 5]);
    assert.deepEqual(numbersIn(path), [6]);
  });

  it('does not rotate when max_size is 0', async () => {
    const d = create({ max_size: 0 });
    for (let i = 0; i < 20; i++) await d.send([event(i)]);
    assert.ok(!existsSync(`${path}.1`));
    assert.deepEqual(numbersIn(path), range(0, 20));
  });

  it('rotates by time once rotate_every has elapsed', async () => {
    const d = create({ rotate_every: 150 });
    await d.send([event(0)]);
    await d.send([event(1)]);
    assert.ok(!existsSync(`${path}.1`), 'no rotation before rotate_every');
    await sleep(250);
    await d.send([event(2)]);
    assert.deepEqual(numbersIn(`${path}.1`), [0, 1]);
    assert.deepEqual(numbersIn(path), [2]);
    await d.send([event(3)]); // the new file's period has just begun
    assert.deepEqual(numbersIn(path), [2, 3]);
    assert.ok(!existsSync(`${path}.2`));
  });

  it('rotates by time after a step back of the wall clock, within rotate_every of the step', async (t) => {
    const d = create({ rotate_every: 150 });
    await d.send([event(0)]);
    const real = Date.now.bind(Date);
    t.mock.method(Date, 'now', () => real() - 24 * 3600 * 1000);
    await d.send([event(1)]); // the file looks created a day from now
    await sleep(250);
    await d.send([event(2)]);
    assert.deepEqual(numbersIn(`${path}.1`), [0, 1], 'rotated, not a day later');
    assert.deepEqual(numbersIn(path), [2]);
  });

  it('appends after a restart, counting the existing size toward max_size', async () => {
    const first = create();
    await first.send([event(0), event(1)]);
    await first.close();
    const second = create({ max_size: LINE_BYTES * 3 });
    await second.send([event(2)]);
    assert.deepEqual(numbersIn(path), [0, 1, 2]);
    assert.ok(!existsSync(`${path}.1`));
    await second.send([event(3)]); // 3 lines already there: this one goes to a fresh file
    assert.deepEqual(numbersIn(`${path}.1`), [0, 1, 2]);
    assert.deepEqual(numbersIn(path), [3]);
  });

  it('moves a partial last line left by a crash aside before appending, so every line parses', async () => {
    mkdirSync(join(dir, 'logs'), { recursive: true });
    // The partial line longer than the 64 KiB read back at a time.
    const partial = `{"uuid":"trunc${'x'.repeat(100_000)}`;
    writeFileSync(path, `${line(0)}\n${partial}`);
    const d = create();
    await d.send([event(1)]);
    assert.equal(readFileSync(path, 'utf8'), `${line(0)}\n${line(1)}\n`);
    const aside = readdirSync(join(dir, 'logs')).filter((name) => name.startsWith('events.ndjson.partial-'));
    assert.equal(aside.length, 1);
    assert.equal(readFileSync(join(dir, 'logs', aside[0]!), 'utf8'), partial);
    assert.equal(statSync(join(dir, 'logs', aside[0]!)).mode & 0o777, 0o640);
  });

  it('cuts nothing from a file that logrotate moved away between opening it and reading it back', async () => {
    mkdirSync(join(dir, 'logs'), { recursive: true });
    writeFileSync(path, `${line(0)}\n{"uuid":"trunc`);
    const d = create();
    const realOpen = fsPromises.open;
    let rotated = false;
    // logrotate (create mode) runs right when the file is opened for reading back.
    (fsPromises as { open: typeof fsPromises.open }).open = ((
      file: string,
      flags?: string,
      mode?: number,
    ) => {
      if (!rotated && file === path && flags === 'r') {
        rotated = true;
        renameSync(path, `${path}.1`);
        writeFileSync(path, '');
      }
      return realOpen(file, flags, mode);
    }) as typeof fsPromises.open;
    syncBuiltinESMExports();
    try {
      await d.send([event(1)]);
    } finally {
      (fsPromises as { open: typeof fsPromises.open }).open = realOpen;
      syncBuiltinESMExports();
    }
    assert.ok(rotated);
    assert.equal(
      readFileSync(`${path}.1`, 'utf8'),
      `${line(0)}\n{"uuid":"trunc`,
      'left as logrotate left it',
    );
    assert.equal(readFileSync(path, 'utf8'), `${line(1)}\n`, 'written to the file now at path');
  });

  it('keeps writing to the current file while a non-file blocks rotation, and rotates once it is gone', async () => {
    mkdirSync(`${path}.1`, { recursive: true });
    const d = create({ max_size: LINE_BYTES, max_files: 1 });
    for (let i = 0; i < 3; i++) await d.send([event(i)]);
    assert.deepEqual(numbersIn(path), [0, 1, 2]);
    assert.ok(statSync(`${path}.1`).isDirectory(), 'the directory is not moved or deleted');
    rmSync(`${path}.1`, { recursive: true });
    await d.send([event(3)]);
    assert.deepEqual(numbersIn(`${path}.1`), [0, 1, 2]);
    assert.deepEqual(numbersIn(path), [3]);
  });

  it('makes the directory again when it was removed while Eyrie runs', async () => {
    const d = create();
    await d.send([event(0)]);
    rmSync(join(dir, 'logs'), { recursive: true });
    await d.send([event(1)]);
    assert.deepEqual(numbersIn(path), [1]);
    assert.equal(statSync(path).mode & 0o777, 0o640);
  });

  it('recreates path when the file was moved away (logrotate) or deleted', async () => {
    const d = create();
    await d.send([event(0)]);
    renameSync(path, `${path}.moved`);
    await d.send([event(1)]);
    assert.deepEqual(numbersIn(`${path}.moved`), [0]);
    assert.deepEqual(numbersIn(path), [1]);
    assert.equal(statSync(path).mode & 0o777, 0o640);
    unlinkSync(path);
    await d.send([event(2)]);
    assert.deepEqual(numbersIn(path), [2]);
  });

  it('follows a file replaced by another one and counts its size', async () => {
    const d = create({ max_size: LINE_BYTES * 2 });
    await d.send([event(0)]);
    renameSync(path, `${path}.old`); // logrotate's create mode: move away, then make a new file
    writeFileSync(path, `${line(10)}\n`);
    await d.send([event(1)]);
    assert.deepEqual(numbersIn(path), [10, 1]);
    await d.send([event(2)]);
    assert.deepEqual(numbersIn(`${path}.1`), [10, 1]);
    assert.deepEqual(numbersIn(path), [2]);
  });

  it('serializes concurrent sends: no interleaving across rotations', async () => {
    const d = create({ max_size: LINE_BYTES * 7, max_files: 50 });
    await Promise.all(range(0, 20).map((b) => d.send(range(b * 3, 3).map(event))));
    const files = readdirSync(join(dir, 'logs'));
    const all = files.flatMap((f) => numbersIn(join(dir, 'logs', f))).sort((a, b) => a - b);
    assert.deepEqual(all, range(0, 60));
    assert.ok(files.length >= 10, `expected rotations, got ${files.length} files`);
  });

  it('reports write failures as RetryableError, and a retry succeeds once the cause is gone', async () => {
    const d = create();
    await d.send([event(0)]);
    renameSync(path, `${path}.moved`);
    mkdirSync(path); // something replaced the file with a directory
    await assert.rejects(d.send([event(1)]), (err: unknown) => {
      assert.ok(err instanceof RetryableError);
      assert.match(err.message, /events\.ndjson/);
      return true;
    });
    rmSync(path, { recursive: true });
    await d.send([event(1)]);
    assert.deepEqual(numbersIn(path), [1]);
  });

  it('close() closes the file; later sends fail', async () => {
    const d = create({ fsync: false });
    await d.send([event(0)]);
    await d.close();
    assert.deepEqual(numbersIn(path), [0]);
    await assert.rejects(d.send([event(1)]), RetryableError);
    assert.deepEqual(numbersIn(path), [0]);
  });

  it('fails create() clearly when path is a directory', () => {
    mkdirSync(path, { recursive: true });
    assert.throws(() => create(), /destination "file-test": path: .*events\.ndjson is a directory/);
  });

  it('fails create() clearly when the directory cannot be created', () => {
    writeFileSync(join(dir, 'logs'), 'a file, not a directory');
    assert.throws(() => create(), /destination "file-test": path: cannot create directory .*logs: ENOTDIR/);
  });

  it(
    'fails create() clearly when the file is not writable',
    { skip: process.getuid?.() === 0 && 'root can write anywhere' },
    () => {
      mkdirSync(join(dir, 'logs'), { mode: 0o500 });
      assert.throws(
        () => create(),
        /destination "file-test": path: cannot open .*events\.ndjson for writing: .*EACCES/,
      );
    },
  );

  it('fails create() clearly when the directory cannot be made even by root', () => {
    assert.throws(
      () => create({ path: '/proc/eyrie-test/events.ndjson', max_size: 0 }),
      /destination "file-test": path: cannot create directory \/proc\/eyrie-test: /,
    );
  });

  it('starts on a full disk (ENOSPC, no inode left) with a warning, and sends once there is room', async () => {
    const realOpenSync = fs.openSync;
    const full = Object.assign(new Error(`ENOSPC: no space left on device, open '${path}'`), {
      code: 'ENOSPC',
    });
    fs.openSync = (...args: Parameters<typeof realOpenSync>) => {
      if (args[0] === path) throw full;
      return realOpenSync(...args);
    };
    syncBuiltinESMExports();
    let d: Destination;
    try {
      d = create();
    } finally {
      fs.openSync = realOpenSync;
      syncBuiltinESMExports();
    }
    assert.equal(existsSync(path), false);
    await d.send([event(0)]);
    assert.equal(readFileSync(path, 'utf8'), `${line(0)}\n`);
  });

  it('fails create() clearly when the file cannot be opened even by root', () => {
    // /proc exists, but no file can be created in it, whoever runs the tests (CI runs as root).
    assert.throws(
      () => create({ path: '/proc/eyrie-test.ndjson', max_size: 0 }),
      /destination "file-test": path: cannot open \/proc\/eyrie-test\.ndjson for writing: /,
    );
  });
});
