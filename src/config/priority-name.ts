import { PRIORITIES, parsePriority } from '../event/priority.ts';
import type { Priority } from '../event/priority.ts';
import { closest } from './suggest.ts';

const SPELLINGS = [...PRIORITIES.map((p) => p.toLowerCase()), 'info'];

export type PriorityCheck = { ok: true; priority: Priority | undefined } | { ok: false; message: string };

/**
 * Reads a `minimum_priority`: a Falco priority name in any case, or `info`; '' means no filter.
 * Unlike Falcosidekick, which turns anything it does not recognise into "all events", a typo is an error.
 */
export function checkMinimumPriority(value: unknown): PriorityCheck {
  if (value === '' || value === null || value === undefined) return { ok: true, priority: undefined };
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const priority = parsePriority(text.trim());
  if (priority) return { ok: true, priority };
  const guess = closest(text.trim(), SPELLINGS);
  const hint = guess === undefined ? '' : `; did you mean "${guess}"?`;
  return {
    ok: false,
    message: `"${text}" is not a Falco priority${hint} (one of ${SPELLINGS.join(', ')})`,
  };
}
