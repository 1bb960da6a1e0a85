import { Scalar } from 'yaml';
import { itemsOf, mapValueSchema, propertiesOf } from './json-schema.ts';
import type { JsonSchema } from './json-schema.ts';
import type { Issues, Path } from './origins.ts';
import { isPlainObject } from './plain.ts';
import { formatDuration, formatSize, parseDuration, parseSize } from './units.ts';

/**
 * Converts every value the schema marks with `unit` (see schema.ts) to a number: bytes for sizes,
 * milliseconds for durations. Strings that do not parse are reported; other wrong types were already
 * reported by schema validation. Works in place; returns the converted value.
 */
export function convertUnits(
  value: unknown,
  schema: JsonSchema | undefined,
  path: Path,
  issues: Issues,
): unknown {
  if (!schema) return value;
  if (schema.unit === 'size' || schema.unit === 'duration') return convertOne(value, schema, path, issues);
  if (Array.isArray(value)) {
    const items = itemsOf(schema);
    value.forEach((item, i) => (value[i] = convertUnits(item, items, [...path, i], issues)));
  } else if (isPlainObject(value)) {
    const properties = propertiesOf(schema);
    for (const [key, child] of Object.entries(value)) {
      value[key] = convertUnits(child, properties?.[key] ?? mapValueSchema(schema), [...path, key], issues);
    }
  }
  return value;
}

function convertOne(value: unknown, schema: JsonSchema, path: Path, issues: Issues): unknown {
  const isSize = schema.unit === 'size';
  const parsed = isSize ? parseSize(value) : parseDuration(value);
  if (typeof value === 'number' && parsed === undefined && Number.isInteger(value) && value >= 0) {
    // The schema takes any integer; one past 2^53 (from an env var's digits) is not exact.
    issues.atValue(path, `${value} is too large: at most ${Number.MAX_SAFE_INTEGER}`);
    return value;
  }
  if (parsed === undefined) {
    // Any other type was reported by schema validation.
    if (typeof value !== 'string') return value;
    issues.atValue(
      path,
      isSize
        ? `"${value}" is not a size like "512KiB", "1MiB" or "10MB"`
        : `"${value}" is not a duration like "500ms", "75s" or "1m30s"`,
    );
    return value;
  }
  const minimum = typeof schema.unitMinimum === 'number' ? schema.unitMinimum : 0;
  if (parsed < minimum) {
    issues.atValue(path, `must be at least ${isSize ? formatSize(minimum) : formatDuration(minimum)}`);
  }
  return parsed;
}

/**
 * The reverse, for display: sizes and durations in words ("1MiB", "1m30s"; a size of 0 stays 0), octal
 * settings in octal (a YAML node, for `stringify`), and
 * keys in the schema's order (the order of the documentation), others after them.
 */
export function describeUnits(value: unknown, schema: JsonSchema | undefined): unknown {
  if (!schema) return value;
  if (typeof value === 'number' && schema.unit === 'size') return value === 0 ? 0 : formatSize(value);
  if (typeof value === 'number' && schema.unit === 'duration') return formatDuration(value);
  // Permission bits read as such (0o640), not as the decimal number 416.
  if (typeof value === 'number' && schema.octal === true)
    return Object.assign(new Scalar(value), { format: 'OCT' });
  if (Array.isArray(value)) return value.map((item) => describeUnits(item, itemsOf(schema)));
  if (isPlainObject(value)) {
    const properties = propertiesOf(schema);
    const order = Object.keys(properties ?? {});
    const rank = (key: string): number => (order.includes(key) ? order.indexOf(key) : order.length);
    const keys = Object.keys(value).sort((a, b) => rank(a) - rank(b));
    return Object.fromEntries(
      keys.map((k) => [k, describeUnits(value[k], properties?.[k] ?? mapValueSchema(schema))]),
    );
  }
  return value;
}
