import { pino, type Logger } from 'pino';

/** A pino logger at `level` (default `warn`) whose lines are collected, parsed. */
export function warningsLogger(level = 'warn'): { logger: Logger; warnings: Record<string, unknown>[] } {
  const warnings: Record<string, unknown>[] = [];
  const logger = pino(
    { level },
    { write: (line: string) => warnings.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, warnings };
}
