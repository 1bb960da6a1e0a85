/**
 * Signals that arrive while the CLI's modules load (about a second): `bin/eyrie.js` notes SIGTERM and
 * SIGINT before importing anything, so that an orchestrator stopping a service that is still starting
 * gets a clean stop (exit 0), not Node's default action (exit 143). The CLI then takes them over: a
 * service adopts what was noted once its own handlers are installed; a one-shot command goes back to
 * the default action.
 */
interface NotedSignals {
  signals: NodeJS.Signals[];
  note: (signal: NodeJS.Signals) => void;
}

const KEY = Symbol.for('eyrie.earlySignals');

/** Stops noting; returns what was noted (none when started without bin/eyrie.js, as tests do). */
export function adoptEarlySignals(): NodeJS.Signals[] {
  const holder = globalThis as { [KEY]?: NotedSignals };
  const noted = holder[KEY];
  if (noted === undefined) return [];
  holder[KEY] = undefined;
  process.off('SIGTERM', noted.note);
  process.off('SIGINT', noted.note);
  return noted.signals;
}

/** For a one-shot command: signals take their default action again, one already noted included. */
export function releaseEarlySignals(): void {
  const [first] = adoptEarlySignals();
  if (first !== undefined) process.kill(process.pid, first);
}
