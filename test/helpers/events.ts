import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseFalcoEvent, type FalcoEvent } from '../../src/event/falco-event.ts';

const generator = fileURLToPath(new URL('../fixtures/falco/generate-events.mjs', import.meta.url));

/** Realistic Falco alerts (raw JSON lines) from the shared deterministic generator. */
export function generateEvents(
  count: number,
  options: { edgeCases?: boolean; seed?: number; extra?: string[] } = {},
): string[] {
  const args = [generator, '--count', String(count), '--seed', String(options.seed ?? 1)];
  if (options.edgeCases) args.push('--edge-cases');
  args.push(...(options.extra ?? []));
  const out = execFileSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  return out.split('\n').filter((l) => l !== '');
}

/**
 * One Falco alert ("Terminal shell in container", Warning, node-1, tags container+shell) with the
 * given output fields; `extra` overrides top-level keys (undefined removes one).
 */
export function alertWith(fields: Record<string, unknown>, extra: Record<string, unknown> = {}): FalcoEvent {
  return parseFalcoEvent(
    JSON.stringify({
      output: 'x',
      priority: 'Warning',
      rule: 'Terminal shell in container',
      time: '2026-11-27T10:00:00.123456789Z',
      output_fields: fields,
      source: 'syscall',
      tags: ['container', 'shell'],
      hostname: 'node-1',
      ...extra,
    }),
  );
}
