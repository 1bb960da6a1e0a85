import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_RETRY_AFTER_MS } from './backoff.ts';
import { classify, HttpStatusError, parseRetryAfter } from './errors.ts';

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-29T12:00:00Z');

  it('reads delta-seconds, also with a fraction, as milliseconds', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 7200.5 ', now), 7_200_500);
    assert.equal(parseRetryAfter('3600.10', now), 3_600_100);
    assert.equal(parseRetryAfter(['5', '9'], now), 5000);
  });

  it('reads an HTTP date as the time left until it, 0 once past', () => {
    assert.equal(parseRetryAfter('Sun, 29 Nov 2026 12:01:30 GMT', now), 90_000);
    assert.equal(parseRetryAfter('Sunday, 29-Nov-26 12:00:10 GMT', now), 10_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', now), 0);
  });

  it('reads an asctime date (no zone) as GMT, whatever the local time zone', () => {
    const zone = process.env.TZ;
    // Node applies a TZ assigned at run time to later Date calls.
    process.env.TZ = 'America/New_York';
    try {
      assert.equal(parseRetryAfter('Sun Nov 29 12:01:00 2026', now), 60_000);
      assert.equal(parseRetryAfter('Sun Nov  1 12:00:00 2026', now), 0);
      // A single space before a one-digit day, as some servers write it.
      assert.equal(parseRetryAfter('Sun Dec 6 12:00:00 2026', now), 7 * 24 * 3600 * 1000);
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('ignores what is neither (a number is never taken for a date)', () => {
    for (const value of ['', '  ', '-5', '12:00', '1e3', 'soon', '7200.5.1', undefined])
      assert.equal(parseRetryAfter(value, now), undefined, String(value));
  });

  it('caps a huge value', () => {
    assert.equal(parseRetryAfter('99999999999', now), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter('Fri, 01 Jan 9999 00:00:00 GMT', now), MAX_RETRY_AFTER_MS);
  });
});

describe('classify', () => {
  it('does not retry a request undici refuses to send (invalid argument)', () => {
    const err = Object.assign(new Error('invalid header key'), { code: 'UND_ERR_INVALID_ARG' });
    assert.deepEqual(classify(err), {
      retryable: false,
      reason: 'invalid_request',
      message: 'invalid header key',
    });
  });

  it('redacts secrets in the message, in a status body before it is cut', () => {
    const secret = 'tok-0123456789abcdef';
    // The cut at 300 characters falls inside the echoed token.
    const body = `${'x'.repeat(290)}Bearer ${secret} and more`;
    const status = classify(new HttpStatusError(401, body), {}, [secret]);
    assert.equal(status.message, `HTTP 401: ${'x'.repeat(290)}Bearer [re`);
    assert.ok(!status.message.includes(secret.slice(0, 3)));
    const network = classify(new Error(`connect to user:${secret}@host failed`), {}, [secret]);
    assert.equal(network.message, 'connect to user:[redacted]@host failed');
  });
});
