/** Falco priorities, most severe first; the index is Falco's own number (0 = Emergency … 7 = Debug). */
export const PRIORITIES = [
  'Emergency',
  'Alert',
  'Critical',
  'Error',
  'Warning',
  'Notice',
  'Informational',
  'Debug',
] as const;

export type Priority = (typeof PRIORITIES)[number];

const BY_NAME = new Map<string, Priority>([
  ...PRIORITIES.map((p) => [p.toLowerCase(), p] as const),
  ['info', 'Informational'],
]);

/**
 * Falco's name for any accepted spelling (any case, plus `info`); undefined when not a priority.
 * Lower-cased as Go's strings.ToLower does for Falcosidekick: it maps U+0130 (`İ`) to a plain `i`,
 * where JS gives `i` plus a combining dot, so `İnfo` is Informational there too.
 */
export function parsePriority(text: string): Priority | undefined {
  return BY_NAME.get(text.replaceAll('\u0130', 'i').toLowerCase());
}

/** Falco's numbering: 0 = Emergency … 7 = Debug (falco-exporter, gRPC enum). */
export function falcoPriorityNumber(p: Priority): number {
  return PRIORITIES.indexOf(p);
}

/** Falcosidekick's reversed numbering: Debug = 1 … Emergency = 8 (its `priority` metric label). */
export function sidekickPriorityNumber(p: Priority): number {
  return 8 - PRIORITIES.indexOf(p);
}

/** True when `p` is at least as severe as `minimum`. */
export function atLeast(p: Priority, minimum: Priority): boolean {
  return PRIORITIES.indexOf(p) <= PRIORITIES.indexOf(minimum);
}
