/** One problem found while loading the configuration, located as precisely as the source allows. */
export interface ConfigIssue {
  file?: string;
  /** 1-based. */
  line?: number;
  /** 1-based. */
  column?: number;
  /** Set when the problem comes from an environment variable rather than a file. */
  env?: string;
  /** Key path of the offending setting as the user wrote it, e.g. `listen.port` or `destinations[0].name`. */
  path: string;
  message: string;
}

/** `file:line:column: key.path: message`, or `env NAME: message` for env-derived problems. */
export function formatIssue(issue: ConfigIssue): string {
  if (issue.env !== undefined) return `env ${issue.env}: ${issue.message}`;
  const where: string[] = [];
  if (issue.file !== undefined) {
    where.push(issue.line === undefined ? issue.file : `${issue.file}:${issue.line}:${issue.column ?? 1}`);
  }
  if (issue.path !== '') where.push(issue.path);
  where.push(issue.message);
  return where.join(': ');
}

/** Thrown by loadConfig with every problem found, so a user can fix them all in one pass. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }

  override toString(): string {
    return this.issues.map(formatIssue).join('\n');
  }
}

/**
 * A setting of one destination that cannot be used (an unreadable file, a URL Node cannot parse),
 * found when the destination is built. `key` is its path in the destination's entry, so that
 * `eyrie check` and `serve` point at it in the file.
 */
export class DestinationSettingError extends Error {
  readonly key: string;
  readonly detail: string;

  constructor(destination: string, key: string, detail: string, options?: ErrorOptions) {
    super(`destination "${destination}": ${key}: ${detail}`, options);
    this.name = 'DestinationSettingError';
    this.key = key;
    this.detail = detail;
  }
}
