/** Anything thrown, as an Error (libraries and user code may throw strings or other values). */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The `code` of a system or library error (ENOENT, SQLITE_BUSY, UND_ERR_…), if it has one. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Why a file could not be read, in words for a config error ("no such file", "permission denied"). */
export function readFailure(error: unknown): string {
  const code = errorCode(error);
  return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(error);
}
