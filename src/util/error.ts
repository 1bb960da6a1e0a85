/** Anything thrown, as an Error (libraries and user code may throw strings or other values). */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Why a file could not be read, in words for a config error ("no such file", "permission denied"). */
export function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(error);
}
