import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatSize, parseDuration, parseSize } from './units.ts';
import { expandVars } from './interpolate.ts';
import { closest } from './suggest.ts';

describe('sizes', () => {
  it('parses bytes and binary or decimal units', () => {
    assert.equal(parseSize(1024), 1024);
    assert.equal(parseSize('1MiB'), 1024 * 1024);
    assert.equal(parseSize('512KiB'), 512 * 1024);
    assert.equal(parseSize('10MB'), 10_000_000);
    assert.equal(parseSize('1.5 kib'), 1536);
    assert.equal(parseSize('2048'), 2048);
    for (const bad of ['lots', '1 parsec', '-1', '', 1.5, -3, true])
      assert.equal(parseSize(bad), undefined, String(bad));
  });

  it('formats the shortest exact spelling', () => {
    assert.equal(formatSize(1024 * 1024), '1MiB');
    assert.equal(formatSize(10_000_000), '10MB');
    assert.equal(formatSize(1000 + 1), '1001');
  });
});

describe('durations', () => {
  it('parses milliseconds and Go-style strings', () => {
    assert.equal(parseDuration(250), 250);
    assert.equal(parseDuration('75s'), 75_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('24h'), 86_400_000);
    assert.equal(parseDuration('1h 30m'), 5_400_000);
    assert.equal(parseDuration('1500'), 1500);
    for (const bad of ['soon', '5 minutes', '1x', '', 'ms', -1])
      assert.equal(parseDuration(bad), undefined, String(bad));
  });

  it('formats Go-style', () => {
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(75_000), '1m15s');
    assert.equal(formatDuration(2), '2ms');
    assert.equal(formatDuration(0), '0s');
  });
});

describe('${VAR} expansion', () => {
  it('expands, defaults and escapes', () => {
    assert.deepEqual(expandVars('a-${X}-${Y:-d}-$${Z}', { X: '1' }), { ok: true, value: 'a-1-d-${Z}' });
    assert.deepEqual(expandVars('${X}', { X: '' }), { ok: true, value: '' });
    assert.equal(expandVars('${MISSING}', {}).ok, false);
    assert.equal(expandVars('${not valid}', {}).ok, false);
    assert.equal(expandVars('${OPEN', { OPEN: 'x' }).ok, false);
  });
});

describe('suggestions', () => {
  it('finds prefixes and near misses, and nothing far off', () => {
    assert.equal(closest('warn', ['warning', 'error']), 'warning');
    assert.equal(closest('prot', ['port', 'address']), 'port');
    assert.equal(closest('alerts', ['alert', 'critical']), 'alert');
    assert.equal(closest('zzz', ['port', 'address']), undefined);
  });
});
