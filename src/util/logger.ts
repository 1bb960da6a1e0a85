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
  const literal = secrets.filter((s) => s.length >= 4);
  if (literal.length > 0) {
    options.hooks = {
      streamWrite: (line: string) =>
        literal.reduce((text, secret) => text.split(secret).join('[redacted]'), line),
    };
  }
  if (config.format === 'pretty' && destination === undefined) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { destination: 2 } } });
  }
  return destination
    ? pino(options, destination as never)
    : pino(options, pino.destination({ dest: 2, sync: false }));
}
