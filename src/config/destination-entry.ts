import type { DestinationType } from '../destinations/types.ts';
import { propertiesOf } from './json-schema.ts';
import type { JsonSchema } from './json-schema.ts';
import { COMMON_DESTINATION_KEYS, destinationCommonSchema } from './schema.ts';

export type DestinationTypes = ReadonlyMap<string, DestinationType<never>>;

const commonProperties = propertiesOf(destinationCommonSchema as unknown as JsonSchema) ?? {};

/** The type named by a raw destination entry, if it names a known one. */
export function typeOfEntry(entry: unknown, types: DestinationTypes): DestinationType<never> | undefined {
  const name = typeof entry === 'object' && entry !== null ? (entry as { type?: unknown }).type : undefined;
  return typeof name === 'string' ? types.get(name) : undefined;
}

/**
 * One schema for a whole raw entry (common keys plus the type's options), used to find keys: env
 * overrides and `X_file` references. Validation itself checks the two parts separately.
 */
export function entrySchema(type: DestinationType<never> | undefined): JsonSchema {
  const options = type ? (propertiesOf(type.optionsSchema as unknown as JsonSchema) ?? {}) : {};
  return { type: 'object', properties: { ...options, ...commonProperties } };
}

/** Splits a raw entry into its common keys and its type options. */
export function splitEntry(entry: Record<string, unknown>): {
  common: Record<string, unknown>;
  options: Record<string, unknown>;
} {
  const common: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry)) {
    if (COMMON_DESTINATION_KEYS.includes(key)) common[key] = value;
    else options[key] = value;
  }
  return { common, options };
}
