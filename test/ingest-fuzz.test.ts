import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startIngest, testConfig, type TestIngest } from './helpers/ingest.ts';
import { generateEvents } from './helpers/events.ts';
import { exposeGc } from './helpers/gc.ts';

/** Deterministic PRNG so a failure can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bodies(count: number, seed: number): { body: Buffer; kind: string }[] {
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const real = generateEvents(300, { edgeCases: true, seed });
  const out: { body: Buffer; kind: string }[] = [];
  const wrongTypes = [
    1,
    -1,
    1e308,
    true,
    null,
    'x',
    [],
    {},
    [1, 2],
    { a: { b: [] } },
    '2026-01-01',
    18446744073709551615n,
  ];
  for (let i = 0; i < count; i++) {
    const base = real[int(real.length)]!;
    const kind = int(9);
    let body: Buffer;
    switch (kind) {
      case 0: // truncated JSON
        body = Buffer.from(base.slice(0, int(base.length)));
        break;
      case 1: {
        // random byte flips, including invalid UTF-8
        const b = Buffer.from(base);
        for (let k = 0; k < 1 + int(8); k++) b[int(b.length)] = int(256);
        body = b;
        break;
      }
      case 2: // deep nesting inside output_fields
        body = Buffer.from(
          base.replace('"output_fields":{', `"output_fields":{"deep":${'['.repeat(10 + int(5000))}`),
        );
        break;
      case 3: {
        // huge strings (up to ~1.5x the 256 KiB limit used here)
        const size = int(384 * 1024);
        body = Buffer.from(base.replace('"output":"', `"output":"${'x'.repeat(size)}`));
        break;
      }
      case 4: {
        // wrong types for each top-level key
        const key = [
          'rule',
          'priority',
          'time',
          'output',
          'output_fields',
          'tags',
          'hostname',
          'source',
          'uuid',
        ][int(9)]!;
        const value = wrongTypes[int(wrongTypes.length)]!;
        const obj = JSON.parse(base.replace(/"evt\.time":\d+/, '"evt.time":1')) as Record<string, unknown>;
        obj[key] = value;
        body = Buffer.from(JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
        break;
      }
      case 5: // random bytes
        body = Buffer.from(Array.from({ length: int(2000) }, () => int(256)));
        break;
      case 6: // lone surrogates, control characters and NUL escapes
        body = Buffer.from(base.replace('"output":"', '"output":"\\ud800\\u0000\\udfff\\u001f'));
        break;
      case 7: // structural junk
        body = Buffer.from(
          ['{', '}', '[', ']', ':', ',', '"', '1e999', '-', 'nul', 'tru']
            .map((t) => t.repeat(int(5)))
            .join(''),
        );
        break;
      default: // batches mixing valid and broken events
        body = Buffer.from(`[${base},${base.slice(0, int(base.length))}]`);
    }
    out.push({ body, kind: String(kind) });
  }
  return out;
}

describe('ingest robustness', () => {
  let ingest: TestIngest;
  before(async () => {
    ingest = await startIngest(testConfig((c) => (c.listen.body_limit = 256 * 1024)));
  });
  after(() => ingest.close());

  it('answers 2xx or 4xx to thousands of random and mutated bodies, never crashes, memory stays bounded', async () => {
    const agent = new Agent({ connections: 8 });
    // Retained memory, not V8's appetite: the heap after a full collection (young-generation sizes
    // differ between Node 20 and 24, so resident memory would measure the runtime).
    const collect = exposeGc();
    collect();
    const heapBefore = process.memoryUsage().heapUsed;
    const statuses = new Map<number, number>();
    try {
      for (let round = 0; round < 4; round++) {
        const batch = bodies(1000, 100 + round);
        // The test's capture router keeps what it is given; Eyrie itself must keep nothing.
        ingest.router.events.length = 0;
        await Promise.all(
          batch.map(async ({ body, kind }) => {
            const res = await request(ingest.url, {
              method: 'POST',
              body,
              headers: {
                'content-type':
                  kind === '8'
                    ? 'application/json'
                    : ['application/json', 'text/plain', 'application/x-ndjson'][body.length % 3]!,
              },
              dispatcher: agent,
            });
            await res.body.text();
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
            assert.ok(res.statusCode < 500, `status ${res.statusCode} for a kind ${kind} body`);
          }),
        );
      }
      const ping = await request(new URL('/ping', ingest.url), { dispatcher: agent });
      assert.equal(await ping.body.text(), 'pong\n');
    } finally {
      await agent.close();
    }
    ingest.router.events.length = 0;
    collect();
    const grown = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
    assert.ok(grown < 20, `the heap kept ${grown.toFixed(1)} MB after 4,000 requests`);
    // Both outcomes must have happened, or the corpus is not exercising anything.
    assert.ok((statuses.get(200) ?? 0) > 100, JSON.stringify([...statuses]));
    assert.ok((statuses.get(400) ?? 0) > 100, JSON.stringify([...statuses]));
    assert.ok((statuses.get(413) ?? 0) > 0, JSON.stringify([...statuses]));
  });
});
