import { pino, type Logger, type LoggerOptions } from 'pino';
import type { LogConfig } from '../config/types.ts';

/** Keys that always hold secrets, wherever they appear in a log object. */
const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'config.auth.tokens',
  '*.password',
  '*.token',
  '*.tokens',
  '*.apikey',
  '*.api_key',
  '*.webhook_url',
];

/** Secrets shorter than this are not searched for: they would match ordinary words. */
const MIN_SECRET_LENGTH = 4;

/** `text` with every occurrence of the (long enough) literal `secrets` replaced by `[redacted]`. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length >= MIN_SECRET_LENGTH) result = result.split(secret).join('[redacted]');
  }
  return result;
}

/**
 * pino with secret redaction. `secrets` are literal values (tokens, passwords, webhook URLs) that are
 * replaced wherever they occur inside a log line, whatever the key.
 */
export function createLogger(
  config: LogConfig,
  secrets: readonly string[] = [],
  destination?: NodeJS.WritableStream,
): Logger {
  const options: LoggerOptions = {
    level: config.level,
    base: { service: 'eyrie' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  const literal = secrets.filter((s) => s.length >= MIN_SECRET_LENGTH);
  if (literal.length > 0) options.hooks = { streamWrite: (line: string) => redactSecrets(line, literal) };
  if (config.format === 'pretty' && destination === undefined) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { destination: 2 } } });
  }
  // minLength 1 writes every line at once, as 0 would, but makes flush(cb) wait for the write to end
  // or fail (with 0 it calls back at once); exitAfterLogs relies on that.
  return destination
    ? pino(options, destination as never)
    : pino(options, pino.destination({ dest: 2, sync: false, minLength: 1 }));
}

/** Longest wait for pending log lines before exitAfterLogs exits anyway (ms). */
const LOG_FLUSH_TIMEOUT_MS = 2000;

/**
 * Exits with `code` once the pending log lines are written, or failed to be written. A plain
 * process.exit() would leave them to pino's exit hook, whose synchronous flush (sonic-boom 4, the
 * major pino 10 uses) retries every error but EAGAIN forever: with the log pipe closed (EPIPE, e.g.
 * journald restarted) the process would hang instead of exiting. Once the asynchronous write has
 * failed, pino turns the stream's methods into no-ops, so the exit hook returns at once.
 */
export function exitAfterLogs(logger: Logger, code: number): void {
  process.exitCode = code;
  const exit = () => process.exit(code);
  setTimeout(exit, LOG_FLUSH_TIMEOUT_MS);
  try {
    logger.flush(exit);
  } catch {
    exit();
  }
}
