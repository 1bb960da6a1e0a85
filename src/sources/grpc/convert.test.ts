import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventError } from '../../event/falco-event.ts';
import { ExactNumber, stringifyJson } from '../../event/json.ts';
import { responseToEvent, timestampToRfc3339 } from './convert.ts';
import type { FalcoOutputResponse } from './falco-proto.ts';

/** A decoded response as proto-loader gives it (`defaults: true`, `longs: String`). */
function response(overrides: Partial<FalcoOutputResponse> = {}): FalcoOutputResponse {
  return {
    time: { seconds: '1714557600', nanos: 123456789 },
    priority: 4,
    source_deprecated: 0,
    rule: 'Terminal shell in container',
    output: '10:00:00.123456789: Warning A shell was spawned (user=root container=<NA>)',
    output_fields: { 'user.name': 'root', 'container.id': '<NA>', 'proc.pid': '4242' },
    hostname: 'node-1',
    tags: ['container', 'shell'],
    source: 'syscall',
    ...overrides,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('timestampToRfc3339', () => {
  it('writes UTC with nine fractional digits, from string or number seconds', () => {
    assert.equal(
      timestampToRfc3339({ seconds: '1714557600', nanos: 123456789 }),
      '2024-05-01T10:00:00.123456789Z',
    );
    assert.equal(timestampToRfc3339({ seconds: 1714557600, nanos: 5 }), '2024-05-01T10:00:00.000000005Z');
    assert.equal(timestampToRfc3339({ seconds: '0', nanos: 0 }), '1970-01-01T00:00:00.000000000Z');
  });

  it('refuses a missing or impossible timestamp', () => {
    assert.throws(() => timestampToRfc3339(null), EventError);
    assert.throws(() => timestampToRfc3339({ seconds: '1', nanos: 1_000_000_000 }), EventError);
    assert.throws(() => timestampToRfc3339({ seconds: '1', nanos: -1 }), EventError);
    assert.throws(() => timestampToRfc3339({ seconds: '9223372036854775807', nanos: 0 }), EventError);
  });
});

describe('responseToEvent', () => {
  it('maps every field of a text-output response', () => {
    const event = responseToEvent(response());
    assert.match(event.uuid, UUID);
    assert.deepEqual(
      { ...event, uuid: '' },
      {
        uuid: '',
        rule: 'Terminal shell in container',
        priority: 'Warning',
        time: '2024-05-01T10:00:00.123456789Z',
        output: '10:00:00.123456789: Warning A shell was spawned (user=root container=<NA>)',
        output_fields: { 'user.name': 'root', 'container.id': null, 'proc.pid': '4242' },
        source: 'syscall',
        tags: ['container', 'shell'],
        hostname: 'node-1',
      },
    );
  });

  it('assigns a fresh uuid to every event', () => {
    assert.notEqual(responseToEvent(response()).uuid, responseToEvent(response()).uuid);
  });

  it('maps priority numbers 0 (Emergency) to 7 (Debug) and refuses others', () => {
    const names = [0, 1, 2, 3, 4, 5, 6, 7].map(
      (priority) => responseToEvent(response({ priority })).priority,
    );
    assert.deepEqual(names, [
      'Emergency',
      'Alert',
      'Critical',
      'Error',
      'Warning',
      'Notice',
      'Informational',
      'Debug',
    ]);
    assert.throws(() => responseToEvent(response({ priority: 8 })), EventError);
  });

  it('takes the string source, else the deprecated enum, else syscall', () => {
    const source = (overrides: Partial<FalcoOutputResponse>) => responseToEvent(response(overrides)).source;
    assert.equal(source({ source: 'okta', source_deprecated: 3 }), 'okta');
    assert.equal(source({ source: '', source_deprecated: 0 }), 'syscall');
    assert.equal(source({ source: '', source_deprecated: 1 }), 'k8s_audit');
    assert.equal(source({ source: '', source_deprecated: 2 }), 'internal');
    assert.equal(source({ source: '', source_deprecated: 3 }), 'plugin');
    assert.equal(source({ source: '', source_deprecated: 9 }), 'syscall');
  });

  it('keeps tags as they are and omits an empty hostname', () => {
    const event = responseToEvent(response({ tags: ['T1059', 'mitre_execution'], hostname: '' }));
    assert.deepEqual(event.tags, ['T1059', 'mitre_execution']);
    assert.equal('hostname' in event, false);
    assert.deepEqual(responseToEvent(response({ tags: [] })).tags, []);
  });

  it('turns every "<NA>" into null and keeps every other value a string', () => {
    const event = responseToEvent(
      response({ output_fields: { a: '<NA>', b: '', c: '0.7', d: 'true', e: 'NA' } }),
    );
    assert.deepEqual(event.output_fields, { a: null, b: '', c: '0.7', d: 'true', e: 'NA' });
  });

  it('refuses a response without time or rule', () => {
    assert.throws(() => responseToEvent(response({ time: null })), EventError);
    assert.throws(() => responseToEvent(response({ rule: '' })), EventError);
  });

  describe('with json_output: true (output holds the JSON alert)', () => {
    const document =
      '{"hostname":"node-1","output":"10:00:00.123456789: Warning A shell was spawned (user=root)",' +
      '"output_fields":{"container.id":null,"evt.time":1714557600123456789,"proc.pid":4242,"user.name":"root"},' +
      '"priority":"Warning","rule":"Terminal shell in container","source":"syscall","tags":["container","shell"],' +
      '"time":"2024-05-01T10:00:00.123456789Z","message":"A shell was spawned (user=root)"}';

    it('takes output, typed output_fields with the exact evt.time, time and message from the document', () => {
      const event = responseToEvent(
        response({ output: document, time: { seconds: '1714557600', nanos: 0 }, hostname: 'grpc-host' }),
      );
      assert.equal(event.output, '10:00:00.123456789: Warning A shell was spawned (user=root)');
      assert.equal(event.time, '2024-05-01T10:00:00.123456789Z');
      assert.equal(event.message, 'A shell was spawned (user=root)');
      assert.equal(event.hostname, 'node-1');
      const evtTime = event.output_fields['evt.time'];
      assert.ok(evtTime instanceof ExactNumber);
      assert.equal(
        stringifyJson(event.output_fields),
        document.slice(document.indexOf('{"container'), document.indexOf('},"priority') + 1),
      );
      assert.equal(event.output_fields['container.id'], null);
      assert.match(event.uuid, UUID);
    });

    it('keeps hostname, tags and source from the response when the document lacks them', () => {
      const bare = JSON.stringify({
        output: 'a shell',
        output_fields: { 'proc.pid': 1 },
        priority: 'Warning',
        rule: 'Terminal shell in container',
        time: '2024-05-01T10:00:00.000000001Z',
      });
      const event = responseToEvent(response({ output: bare, source: 'k8s_audit' }));
      assert.equal(event.output, 'a shell');
      assert.deepEqual(event.output_fields, { 'proc.pid': 1 });
      assert.equal(event.time, '2024-05-01T10:00:00.000000001Z');
      assert.equal(event.hostname, 'node-1');
      assert.deepEqual(event.tags, ['container', 'shell']);
      assert.equal(event.source, 'k8s_audit');
    });

    it('ignores a document for another rule, or one that is not an alert', () => {
      const otherRule = document.replace('"Terminal shell in container"', '"Other rule"');
      for (const output of [otherRule, '{"rule":"Terminal shell in container"}', '{not json', '[1]']) {
        const event = responseToEvent(response({ output }));
        assert.equal(event.output, output);
        assert.equal(event.output_fields['container.id'], null);
        assert.equal(event.output_fields['proc.pid'], '4242');
      }
    });
  });
});
