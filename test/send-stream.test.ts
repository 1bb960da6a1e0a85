import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { eyrieCli } from './helpers/eyrie-process.ts';
import { eventLines } from './helpers/delivery.ts';
import { startRecordingServer, type RecordingServer } from './helpers/recording-server.ts';

interface SendProcess {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** `eyrie send - …` with its stdin left open, as Falco's program_output with keep_alive: true runs it. */
function spawnSend(args: string[]): SendProcess {
  const child = spawn(process.execPath, [...eyrieCli, 'send', '-', ...args], { stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function uuidsIn(body: string): string[] {
  return body
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { uuid: string }).uuid);
}

function uuidOf(line: string): string {
  return (JSON.parse(line) as { uuid: string }).uuid;
}

describe('eyrie send - (program_output)', { timeout: 120_000 }, () => {
  let server: RecordingServer;
  before(async () => {
    server = await startRecordingServer();
  });
  after(() => server.close());

  it('posts each line while stdin stays open, retries a restarting server, sums up at the end', async () => {
    const lines = eventLines(4, 301);
    // A batch that never fills: lines must still go out once the pipe is quiet.
    const send = spawnSend(['--url', server.url, '--batch', '50', '--no-progress']);
    try {
      send.child.stdin.write(`${lines[0]}\n`);
      await server.waitFor(1, 20_000); // includes the CLI's start-up
      assert.deepEqual(uuidsIn(server.requests[0]!.text), [uuidOf(lines[0]!)]);

      send.child.stdin.write(`${lines[1]}\n${lines[2]}\n`);
      // Long before the batch of 50 could fill: they went out because the pipe was quiet.
      await server.waitFor(2, 1000);
      assert.deepEqual(
        server.requests.slice(1).flatMap((r) => uuidsIn(r.text)),
        [uuidOf(lines[1]!), uuidOf(lines[2]!)],
      );

      // Eyrie restarting: two 503s, then it takes the event.
      const before = server.requests.length;
      server.respondWith((_req, index) => (index < before + 2 ? { status: 503, body: 'restarting' } : {}));
      send.child.stdin.write(`${lines[3]}\n`);
      const requests = await server.waitFor(before + 3, 10_000);
      for (const r of requests.slice(before)) assert.deepEqual(uuidsIn(r.text), [uuidOf(lines[3]!)]);

      send.child.stdin.end();
      assert.equal(await send.exited, 0, send.stderr());
      assert.match(send.stdout(), /sent 4, accepted 4, rejected 0, failed 0/);
      assert.match(send.stderr(), /retrying 1 event\(s\) in \d+ ms \(HTTP 503: restarting\)/);
      assert.equal(server.requests.length, before + 3);
    } finally {
      send.child.kill();
      server.respondWith(() => ({}));
    }
  });

  it('does not retry a refused event (400) or a 501', async () => {
    server.reset();
    const lines = eventLines(2, 302);
    server.respondWith((req) =>
      req.text.includes(uuidOf(lines[0]!)) ? { status: 400, body: 'bad event' } : { status: 501 },
    );
    const send = spawnSend(['--url', server.url, '--no-progress']);
    send.child.stdin.end(`${lines[0]}\n${lines[1]}\n`);
    assert.equal(await send.exited, 1);
    // 400 and 501 are not worth a retry: one request each.
    assert.equal(server.requests.length, 2);
    assert.match(send.stdout(), /sent 2, accepted 0, rejected 1, failed 1/);
    server.respondWith(() => ({}));
  });

  it('--retry-for bounds the retries: 0 = one attempt, 2s = three (0.5 and 1 s apart), not the default five', async () => {
    for (const [retryFor, requests] of [
      ['0', 1],
      ['2s', 3],
    ] as const) {
      server.reset();
      server.respondWith(() => ({ status: 503, body: 'down' }));
      const send = spawnSend(['--url', server.url, '--no-progress', '--retry-for', retryFor]);
      send.child.stdin.end(`${eventLines(1, 304)[0]}\n`);
      assert.equal(await send.exited, 1, send.stderr());
      assert.equal(server.requests.length, requests, `--retry-for ${retryFor}`);
      assert.match(send.stdout(), /sent 1, accepted 0, rejected 0, failed 1/);
      assert.match(send.stderr(), /error: HTTP 503: down/);
    }
    server.respondWith(() => ({}));
  });

  it('--retry-for forever waits out a Retry-After past the default 10 s budget', async () => {
    server.reset();
    server.respondWith((_req, index) =>
      index === 0 ? { status: 503, headers: { 'retry-after': '11' }, body: 'restarting' } : {},
    );
    const line = eventLines(1, 305)[0]!;
    const send = spawnSend(['--url', server.url, '--no-progress', '--retry-for', 'forever']);
    send.child.stdin.end(`${line}\n`);
    assert.equal(await send.exited, 0, send.stderr());
    assert.equal(server.requests.length, 2);
    assert.deepEqual(uuidsIn(server.requests[1]!.text), [uuidOf(line)]);
    assert.match(send.stderr(), /retrying 1 event\(s\) in 11000 ms/);
    assert.match(send.stdout(), /sent 1, accepted 1, rejected 0, failed 0/);
    server.respondWith(() => ({}));
  });

  it('refuses a --retry-for that is not a duration', async () => {
    const send = spawnSend(['--url', server.url, '--retry-for', 'soon']);
    send.child.stdin.end();
    assert.equal(await send.exited, 1);
    assert.match(send.stderr(), /--retry-for.*must be a duration such as 30s or 5m, or forever/);
  });

  it('refuses a --retry-for without a unit (30 would be 30 ms, giving up at once), but takes 0', async () => {
    server.reset();
    const send = spawnSend(['--url', server.url, '--retry-for', '30']);
    send.child.stdin.end();
    assert.equal(await send.exited, 1);
    assert.match(send.stderr(), /--retry-for.*needs a unit: 30s, 30m or 30ms/);
    assert.equal(server.requests.length, 0);
  });

  it('sends a later line that starts with "[" as a line: the events after it still go at once', async () => {
    server.reset();
    server.respondWith((req) => (req.text.startsWith('[') ? { status: 400, body: 'not an event' } : {}));
    const lines = eventLines(3, 303);
    const send = spawnSend(['--url', server.url, '--no-progress', '--batch', '1']);
    send.child.stdin.write(`${lines[0]}\n[garbage\n${lines[1]}\n${lines[2]}\n`);
    // stdin stays open (program_output with keep_alive): the lines after the bad one are posted anyway.
    await server.waitFor(4, 10_000);
    assert.deepEqual(
      server.requests.map((r) => r.text.trim()),
      [lines[0], '[garbage', lines[1], lines[2]],
    );
    send.child.stdin.end();
    assert.equal(await send.exited, 1, 'one line was rejected');
    assert.match(send.stdout(), /sent 4, accepted 3, rejected 1/);
    server.respondWith(() => ({}));
  });
});
