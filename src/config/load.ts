import { readFileSync } from 'node:fs';
import { destinationTypes as registeredTypes } from '../destinations/registry.ts';
import type { EyrieConfig } from './types.ts';
import { entrySchema, typeOfEntry } from './destination-entry.ts';
import type { DestinationTypes } from './destination-entry.ts';
import { applyEnvOverrides } from './env-overrides.ts';
import { ConfigError, formatIssue } from './errors.ts';
import type { ConfigIssue } from './errors.ts';
import type { JsonSchema } from './json-schema.ts';
import { Issues, OriginMap, parsePath } from './origins.ts';
import { isPlainObject, removeKey } from './plain.ts';
import { buildConfig } from './resolve.ts';
import { nativeSchema, NATIVE_SECTIONS } from './schema.ts';
import { resolveFileRefs } from './secret-files.ts';
import { isSidekickKey, translateSidekick } from './sidekick.ts';
import { presentSidekickEnv } from './sidekick-env.ts';
import { validateInto } from './validate.ts';
import { readYaml } from './yaml-source.ts';
import { readFailure } from '../util/error.ts';

export interface LoadOptions {
  /** YAML file, native or Falcosidekick format; none = defaults plus env. */
  file?: string;
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Default: every type Eyrie ships (tests pass their own). */
  destinationTypes?: DestinationTypes;
}

export interface LoadedConfig {
  config: EyrieConfig;
  /** What the file was: native, Falcosidekick's config.yaml, or no file and no Falcosidekick env vars. */
  format: 'native' | 'falcosidekick' | 'defaults';
  file?: string;
  /** What was translated or ignored (Falcosidekick mode); for the startup log and `eyrie check`. */
  warnings: string[];
  /** Where each setting came from, to locate problems found after loading (see locateProblems). */
  origins: OriginMap;
}

/**
 * Reads the configuration: the YAML file (native or Falcosidekick), Falcosidekick env vars (Falcosidekick
 * file or no file), then EYRIE_* overrides, then `X_file` secrets; validates it all and throws a
 * ConfigError listing every problem found.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const types = options.destinationTypes ?? registeredTypes;
  const issues = new Issues(new OriginMap());
  const warnings: string[] = [];
  const { data, format } = readSource(options.file, env, types, issues, warnings);

  applyEnvOverrides(data, env, types, issues);
  resolveFileRefs(data, nativeSchema as unknown as JsonSchema, [], issues);
  if (Array.isArray(data.destinations)) {
    data.destinations.forEach((entry: unknown, index) => {
      if (isPlainObject(entry)) {
        resolveFileRefs(entry, entrySchema(typeOfEntry(entry, types)), ['destinations', index], issues);
      }
    });
  }
  validateInto(nativeSchema as unknown as JsonSchema, data, [], issues);
  const config = buildConfig(data, types, issues);
  if (issues.list.length > 0) throw new ConfigError(sortIssues(issues.list));
  const loaded: LoadedConfig = { config, format, warnings, origins: issues.origins };
  if (options.file !== undefined) loaded.file = options.file;
  return loaded;
}

function readSource(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
  types: DestinationTypes,
  issues: Issues,
  warnings: string[],
): { data: Record<string, unknown>; format: LoadedConfig['format'] } {
  const sidekick = (source: Record<string, unknown>) =>
    translateSidekick(source, { env, types, issues, warnings, applyEnv: true });
  if (file === undefined) {
    const { data, envApplied } = sidekick({});
    return { data, format: envApplied.length > 0 ? 'falcosidekick' : 'defaults' };
  }
  const parsed = readYaml(readConfigFile(file), file, env, issues);
  if (parsed !== undefined && !isPlainObject(parsed)) {
    issues.atValue([], 'must be a map of settings');
    return { data: {}, format: 'native' };
  }
  const document = parsed ?? {};
  const keys = Object.keys(document);
  const sidekickKeys = keys.filter((k) => isSidekickKey(k, types));
  if (sidekickKeys.length > 0) {
    const nativeKeys = keys.filter((k) => NATIVE_SECTIONS.includes(k));
    if (nativeKeys.length === 0) return { data: sidekick(document).data, format: 'falcosidekick' };
    for (const key of sidekickKeys) {
      issues.atKey(
        [key],
        `"${key}" is a Falcosidekick setting, but this file also has Eyrie sections (${nativeKeys.join(', ')}); write the whole file in one format`,
      );
      removeKey(document, key);
    }
  }
  const ignored = presentSidekickEnv(env, types);
  if (ignored.length > 0) {
    warnings.push(
      `${ignored.join(', ')} ignored: ${file} is in Eyrie's native format (use EYRIE_… overrides)`,
    );
  }
  return { data: document, format: 'native' };
}

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const reason = readFailure(error);
    throw new ConfigError([{ file, path: '', message: `cannot read the config file: ${reason}` }]);
  }
}

/** File problems in reading order, then env problems. */
function sortIssues(list: ConfigIssue[]): ConfigIssue[] {
  return [...list].sort((a, b) => {
    const rank = (i: ConfigIssue): number => (i.env !== undefined ? 1 : 0);
    return rank(a) - rank(b) || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0);
  });
}

/**
 * Locates problems found after loading (a CEL expression or template that does not compile, a TLS
 * file that cannot be read), each written as `setting.path: detail`, as the loader's own are:
 * `file:line:column: key as the user wrote it: detail`. Others keep the file name alone.
 */
export function locateProblems(loaded: LoadedConfig, problems: readonly string[]): string[] {
  return problems.map((problem) => {
    const colon = problem.indexOf(': ');
    const path = colon > 0 ? parsePath(problem.slice(0, colon)) : undefined;
    const fallback = loaded.file !== undefined ? `${loaded.file}: ${problem}` : problem;
    if (path === undefined) return fallback;
    const issues = new Issues(loaded.origins);
    issues.atValue(path, problem.slice(colon + 2));
    const issue = issues.list[0]!;
    if (issue.file === undefined && issue.env === undefined) return fallback;
    return formatIssue(issue);
  });
}
