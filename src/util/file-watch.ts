import { statSync } from 'node:fs';

/**
 * How often certificate files are checked for a new version (cert-manager and Vault agents rewrite
 * them weeks before the old one expires, so a minute is plenty).
 */
export const CERTIFICATE_CHECK_INTERVAL_MS = 60_000;

/** What tells a new version of a file: a Kubernetes secret volume swaps a symlink (a new inode). */
function signatureOf(path: string): string {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st === undefined ? 'missing' : `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch (err) {
    return `unreadable: ${(err as NodeJS.ErrnoException).code}`; // reading it will say why
  }
}

/**
 * Polls `paths` every `intervalMs` and calls `onChange` once per round in which any of them changed
 * (renamed over, rewritten, removed). Polling, not fs.watch: a watch on a file misses the symlink
 * swap of a Kubernetes secret volume, and inotify is not there on every file system. A change seen
 * is not seen again, even if `onChange` fails (a key written after its certificate changes again,
 * and is then read). Returns a function that stops the polling. The timer does not keep the process alive.
 */
export function watchFiles(paths: readonly string[], intervalMs: number, onChange: () => void): () => void {
  let seen = paths.map(signatureOf);
  const timer = setInterval(() => {
    const now = paths.map(signatureOf);
    if (now.every((s, i) => s === seen[i])) return;
    seen = now;
    onChange();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
