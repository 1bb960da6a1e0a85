/** Read-only helpers over plain JSON Schema objects (typebox schemas are plain JSON Schema). */
export type JsonSchema = Readonly<Record<string, unknown>>;

const asSchema = (value: unknown): JsonSchema | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonSchema) : undefined;

/** Declared properties of an object schema, or undefined when it is not one. */
export function propertiesOf(schema: JsonSchema): Record<string, JsonSchema> | undefined {
  return asSchema(schema.properties) as Record<string, JsonSchema> | undefined;
}

/** The value schema of a map (`Type.Record`), or undefined when `schema` is not a map. */
export function mapValueSchema(schema: JsonSchema): JsonSchema | undefined {
  const patterns = asSchema(schema.patternProperties);
  if (patterns) return asSchema(Object.values(patterns)[0]);
  return propertiesOf(schema) ? undefined : asSchema(schema.additionalProperties);
}

/** The declared property whose name matches `name` ignoring case (env var names lose case). */
export function findProperty(schema: JsonSchema, name: string): string | undefined {
  const wanted = name.toLowerCase();
  return Object.keys(propertiesOf(schema) ?? {}).find((p) => p.toLowerCase() === wanted);
}

function alternatives(schema: JsonSchema): JsonSchema[] | undefined {
  const list = schema.anyOf ?? schema.oneOf;
  return Array.isArray(list) ? (list as JsonSchema[]) : undefined;
}

/** The JSON types a value may have, e.g. ['integer', 'string'] for a size. */
export function allowedTypes(schema: JsonSchema): string[] {
  const alts = alternatives(schema);
  if (alts) return [...new Set(alts.flatMap(allowedTypes))];
  if (typeof schema.type === 'string') return [schema.type];
  if (Array.isArray(schema.type)) return schema.type as string[];
  if ('const' in schema) return [typeof schema.const];
  return [];
}

/** The item schema of an array schema. */
export function itemsOf(schema: JsonSchema): JsonSchema | undefined {
  return asSchema(schema.items);
}

/** How an error message describes a valid value: "an integer 1-65535", "one of "json", "pretty"". */
export function expectation(schema: JsonSchema): string {
  if (typeof schema.expect === 'string') return schema.expect;
  const alts = alternatives(schema);
  if (alts?.every((a) => 'const' in a))
    return `one of ${alts.map((a) => JSON.stringify(a.const)).join(', ')}`;
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  if ('const' in schema) return JSON.stringify(schema.const);
  if (alts) return alts.map(expectation).join(' or ');
  switch (schema.type) {
    case 'integer':
    case 'number': {
      const noun = schema.type === 'integer' ? 'an integer' : 'a number';
      const { minimum: min, maximum: max } = schema;
      if (typeof min === 'number' && typeof max === 'number') return `${noun} ${min}-${max}`;
      if (typeof min === 'number') return `${noun} >= ${min}`;
      if (typeof max === 'number') return `${noun} <= ${max}`;
      return noun;
    }
    case 'boolean':
      return 'true or false';
    case 'string':
      if (typeof schema.pattern === 'string') return `a string matching /${schema.pattern}/`;
      return typeof schema.minLength === 'number' && schema.minLength > 0 ? 'a non-empty string' : 'a string';
    case 'array': {
      const items = itemsOf(schema);
      return items?.type === 'string' ? 'a list of strings' : 'a list';
    }
    case 'object':
      return mapValueSchema(schema) ? 'a map of keys to values' : 'a section of keys';
    default:
      return 'a valid value';
  }
}

/** The schema of the setting at `path` (object properties, map values, array items). */
export function schemaAt(schema: JsonSchema, path: readonly (string | number)[]): JsonSchema | undefined {
  let current: JsonSchema | undefined = schema;
  for (const segment of path) {
    if (!current) return undefined;
    if (typeof segment === 'number') current = itemsOf(current);
    else current = propertiesOf(current)?.[segment] ?? mapValueSchema(current);
  }
  return current;
}
