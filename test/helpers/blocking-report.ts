/**
 * Preloaded by `npm test` into every test process (see package.json).
 *
 * With `--test-force-exit`, each test file's process exits as soon as its last test ends, while the
 * verdicts it reports to the runner may still sit in its stdout pipe (asynchronous on Linux): they
 * are lost, and the run reports fewer tests than ran, still passing (nodejs/node#64833; measured
 * here: 24 to 47 of the go-template file's 47 tests reported on Node 20 and 24). A blocking stdout
 * writes every report before the exit.
 */
const stdoutHandle = (process.stdout as unknown as { _handle?: { setBlocking?: (on: boolean) => void } })
  ._handle;
stdoutHandle?.setBlocking?.(true);
