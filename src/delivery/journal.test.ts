import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, JournalUnavailableError } from './journal.ts';
import { makeEvents } from '../../test/helpers/delivery.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('Journal', () => {
  it('refuses an append over the disk cap with a rejected promise, never a throw', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eyrie-journal-'));
    dirs.push(dir);
    const journal = new Journal({ dataDir: dir, commitInterval: 0, commitMaxEvents: 100, diskCap: 1 });
    try {
      const queue = journal.queue('d', { maxEvents: 0, maxBytes: 0, whenFull: 'drop_oldest' }, () => {});
      const [event] = makeEvents(1, 1);
      // The caller (the engine) undoes its dedup keys in a rejection handler: a throw would skip it.
      let appended: Promise<void> | undefined;
      assert.doesNotThrow(() => (appended = journal.append([{ event: event!, destinations: [queue] }])));
      await assert.rejects(appended!, JournalUnavailableError);
    } finally {
      await journal.close();
    }
  });
});
