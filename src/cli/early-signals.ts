/**
 * Signals that arrive while the CLI's modules load (about a second): `bin/eyrie.js` notes SIGTERM,
 * SIGINT and SIGHUP before importing anything, so that an orchestrator stopping a service that is still starting
 * gets a clean stop (exit 0), not Node's default action (exit 143). The CLI then takes them over: a
 * service adopts what was noted once its own handlers are installed; a one-shot command goes back to
 * the default action.
 */
interface NotedSignals {
  signals: NodeJS.Signals[];
  note: (signal: NodeJS.Signals) => void;
}

const KEY = Symbol.for('eyrie.earlySignals');

/** The signals `bin/eyrie.js` notes (keep the two lists alike). */
const EARLY_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** Stops noting; returns what was noted (none when started without bin/eyrie.js, as tests do). */
export function adoptEarlySignals(): NodeJS.Signals[] {
  const holder = globalThis as { [KEY]?: NotedSignals };
  const noted = holder[KEY];
  if (noted === undefined) return [];
  holder[KEY] = undefined;
  for (const signal of EARLY_SIGNALS) process.off(signal, noted.note);
  return noted.signals;
}

/** For a one-shot command: signals take their default action again, one already noted included. */
export function releaseEarlySignals(): void {
  const [first] = adoptEarlySignals();
  if (first !== undefined) process.kill(process.pid, first);
}
