import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
