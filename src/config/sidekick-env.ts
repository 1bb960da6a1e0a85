import type { DestinationTypes } from './destination-entry.ts';
import type { Issues } from './origins.ts';
import { getAt, isPlainObject, setAt } from './plain.ts';
import {
  DEBUG_KEY,
  CLIENT_TLS_SETTINGS,
  SIDEKICK_SETTINGS,
  sidekickEnvName,
  supportedSections,
} from './sidekick-keys.ts';
import { SIDEKICK_OUTPUTS } from './sidekick-outputs.ts';

/**
 * Key paths whose Falcosidekick env var Eyrie reads. Only these: unrelated variables (PATH, HOME …) are
 * never looked at, and for outputs Eyrie cannot serve only the enabling key matters (to refuse it).
 */
export function sidekickEnvKeys(types: DestinationTypes): string[] {
  const supported = supportedSections(types);
  const keys = [...SIDEKICK_SETTINGS.map((s) => s.key), ...CLIENT_TLS_SETTINGS, DEBUG_KEY];
  for (const [section, { mapping }] of supported) {
    const sectionKeys = [
      ...Object.keys(mapping.keys),
      ...Object.keys(mapping.requestKeys ?? {}),
      'minimumpriority',
    ];
    keys.push(...sectionKeys.map((k) => `${section}.${k.toLowerCase()}`));
  }
  for (const [section, key] of Object.entries(SIDEKICK_OUTPUTS)) {
    if (!supported.has(section)) keys.push(`${section}.${key}`);
  }
  return keys;
}

/** The Falcosidekick env vars present (non-empty) in `env`. */
export function presentSidekickEnv(env: NodeJS.ProcessEnv, types: DestinationTypes): string[] {
  return sidekickEnvKeys(types)
    .map(sidekickEnvName)
    .filter((name) => (env[name] ?? '') !== '');
}

/**
 * Applies Falcosidekick env vars over the (lower-cased) Falcosidekick tree, as viper's AutomaticEnv does.
 * Like viper, empty variables count as unset. CUSTOMFIELDS and TEMPLATEDFIELDS are `k:v,k2:v2` lists,
 * merged into the YAML maps; unlike Falcosidekick, which drops any pair whose value contains ":", pairs
 * are split on the first ":" so values such as URLs survive. Returns the names applied.
 */
export function applySidekickEnv(
  tree: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  types: DestinationTypes,
  issues: Issues,
): string[] {
  const applied: string[] = [];
  for (const key of sidekickEnvKeys(types)) {
    const name = sidekickEnvName(key);
    const value = env[name];
    if (value === undefined || value === '') continue;
    const path = key.split('.');
    if (key === 'customfields' || key === 'templatedfields') {
      const report = (message: string): void => issues.add([], { env: name }, message);
      const pairs = parsePairs(value, report, key === 'customfields' ? env : undefined);
      const existing = getAt(tree, path);
      const map = isPlainObject(existing) ? existing : {};
      if (!isPlainObject(existing)) issues.origins.replace(path, { env: name });
      for (const [k, v] of pairs) {
        map[k] = v;
        issues.origins.replace([...path, k], { env: name });
      }
      setAt(tree, path, map);
    } else {
      setAt(tree, path, value);
      issues.origins.replace(path, { env: name });
    }
    applied.push(name);
  }
  return applied;
}

/**
 * `k:v,k2:v2` → pairs, split on the first ":". With `env`, a value `%NAME` is read from env var NAME
 * (Falcosidekick's CUSTOMFIELDS rule); an unset NAME is an error, not a silently missing field.
 */
export function parsePairs(
  text: string,
  report: (message: string) => void,
  env?: NodeJS.ProcessEnv,
): [string, string][] {
  const pairs: [string, string][] = [];
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const colon = item.indexOf(':');
    const key = colon < 0 ? '' : item.slice(0, colon).trim();
    if (key === '') {
      report(`"${item}" is not a key:value pair (write k1:v1,k2:v2)`);
      continue;
    }
    let value = item.slice(colon + 1).trim();
    if (env && value.startsWith('%')) {
      const source = value.slice(1);
      const resolved = env[source];
      if (resolved === undefined || resolved === '') {
        report(`"${key}:${value}" reads environment variable ${source}, which is not set`);
        continue;
      }
      value = resolved;
    }
    pairs.push([key, value]);
  }
  return pairs;
}
