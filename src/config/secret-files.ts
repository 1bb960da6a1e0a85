import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { coerceText } from './coerce.ts';
import { allowedTypes, propertiesOf } from './json-schema.ts';
import type { JsonSchema } from './json-schema.ts';
import type { Issues, Path } from './origins.ts';
import { isPlainObject, removeKey } from './plain.ts';
import { readFailure } from '../util/error.ts';

/**
 * Replaces every `X_file: path` with `X: <file contents>` where the schema declares `X` but not `X_file`
 * (so real path settings like `cert_file` are left alone). Mounted secrets keep tokens and passwords
 * out of the YAML. One trailing newline is dropped; for list settings each non-empty line is one value.
 * Relative paths are relative to the config file, or to the working directory when set from env.
 */
export function resolveFileRefs(
  data: Record<string, unknown>,
  schema: JsonSchema,
  path: Path,
  issues: Issues,
): void {
  const properties = propertiesOf(schema);
  if (!properties) return;
  for (const key of Object.keys(data)) {
    const declared = properties[key];
    if (declared) {
      const value = data[key];
      if (isPlainObject(value)) resolveFileRefs(value, declared, [...path, key], issues);
      continue;
    }
    const base = key.endsWith('_file') ? key.slice(0, -'_file'.length) : undefined;
    const baseSchema = base === undefined ? undefined : properties[base];
    if (base === undefined || !baseSchema) continue;
    const keyPath = [...path, key];
    if (base in data) {
      issues.atKey(keyPath, `set either "${base}" or "${key}", not both`);
      removeKey(data, key);
      continue;
    }
    const text = readReferencedFile(data[key], keyPath, issues);
    removeKey(data, key);
    if (text === undefined) continue;
    data[base] = allowedTypes(baseSchema).includes('array')
      ? text.split(/\r?\n/).filter((line) => line.trim() !== '')
      : coerceText(text.replace(/\r?\n$/, ''), baseSchema);
    issues.origins.copy(keyPath, [...path, base]);
  }
}

function readReferencedFile(reference: unknown, keyPath: Path, issues: Issues): string | undefined {
  if (typeof reference !== 'string' || reference === '') {
    issues.atValue(keyPath, 'must be the path of a file');
    return undefined;
  }
  const origin = issues.origins.value(keyPath);
  const file = resolve(origin?.file !== undefined ? dirname(origin.file) : process.cwd(), reference);
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const reason = readFailure(error);
    issues.atValue(keyPath, `cannot read "${file}": ${reason}`);
    return undefined;
  }
}
