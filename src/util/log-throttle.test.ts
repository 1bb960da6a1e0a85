import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { LogThrottle } from './log-throttle.ts';

describe('LogThrottle', () => {
  it('lets one line through per interval and counts the ones held back', () => {
    const throttle = new LogThrottle(10_000);
    assert.equal(throttle.take(0), 0, 'the first line goes through');
    assert.equal(throttle.take(1), undefined);
    assert.equal(throttle.take(9_999), undefined);
    assert.equal(throttle.take(10_000), 2, 'the next one says how many were held back');
    assert.equal(throttle.take(10_001), undefined);
  });

  it('is not silenced by a wall clock stepped back', async (t) => {
    const throttle = new LogThrottle(20);
    assert.equal(throttle.take(), 0);
    const stepped = Date.now() - 3_600_000;
    t.mock.method(Date, 'now', () => stepped);
    await sleep(30);
    assert.equal(throttle.take(), 0, 'the interval ran out by the monotonic clock');
  });
});
