/** Anything thrown, as an Error (libraries and user code may throw strings or other values). */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
