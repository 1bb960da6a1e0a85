import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';
import { expectation, propertiesOf } from './json-schema.ts';
import { leadingZeroProblem } from './coerce.ts';
import type { JsonSchema } from './json-schema.ts';
import type { Issues, Path, PathSegment } from './origins.ts';
import { didYouMean } from './suggest.ts';

const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: false });
// ajv-formats is CommonJS; its function is the module's `default` under NodeNext typing.
ajvFormats.default(ajv);
// Our annotations (see schema.ts); they validate nothing.
ajv.addKeyword({ keyword: 'expect', schemaType: 'string' });
ajv.addKeyword({ keyword: 'unit', schemaType: 'string' });
ajv.addKeyword({ keyword: 'unitMinimum', schemaType: 'number' });
ajv.addKeyword({ keyword: 'octal', schemaType: 'boolean' });

const compiled = new WeakMap<object, ValidateFunction>();

function compile(schema: JsonSchema): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

export interface ValidateOptions {
  /** Message for a key the schema does not declare; default `unknown key "x"` with a suggestion. */
  unknownKey?: (key: string, known: string[]) => string;
}

const defaultUnknownKey = (key: string, known: string[]): string => {
  const hint = didYouMean(key, known);
  return hint === '' && known.length > 0
    ? `unknown key "${key}" (known keys: ${known.join(', ')})`
    : `unknown key "${key}"${hint}`;
};

/**
 * Validates `data` (found at `base` in the whole config) against `schema`, filling in defaults in place.
 * Each problem becomes one located issue: ajv reports every failed branch of a union, so only the
 * outermost error per setting is kept and worded from the schema.
 */
export function validateInto(
  schema: JsonSchema,
  data: unknown,
  base: Path,
  issues: Issues,
  options: ValidateOptions = {},
): boolean {
  const validate = compile(schema);
  if (validate(data)) return true;
  const unknownKey = options.unknownKey ?? defaultUnknownKey;
  for (const error of outermostErrors(validate.errors ?? [])) {
    const path = [...base, ...pointerToPath(error.instancePath, data)];
    const parent = (error.parentSchema ?? {}) as JsonSchema;
    if (error.keyword === 'additionalProperties') {
      const key = (error.params as { additionalProperty: string }).additionalProperty;
      issues.atKey([...path, key], unknownKey(key, Object.keys(propertiesOf(parent) ?? {})));
    } else if (error.keyword === 'required') {
      const key = (error.params as { missingProperty: string }).missingProperty;
      issues.atValue(path, `missing required key "${key}"`);
    } else if (error.keyword === 'propertyNames') {
      const key = (error.params as { propertyName: string }).propertyName;
      const names = (parent.propertyNames ?? {}) as JsonSchema;
      issues.atKey([...path, key], `key "${key}" must be ${expectation(names)}`);
    } else if (error.keyword === 'format') {
      issues.atValue(path, `must be a valid ${(error.params as { format: string }).format}`);
    } else if (
      ['type', 'minimum', 'maximum', 'minLength', 'anyOf', 'oneOf', 'const', 'enum', 'pattern'].includes(
        error.keyword,
      )
    ) {
      issues.atValue(
        path,
        leadingZeroProblem(valueAt(data, error.instancePath), parent) ?? `must be ${expectation(parent)}`,
      );
    } else {
      issues.atValue(path, error.message ?? 'is invalid');
    }
  }
  return false;
}

/** One error per offending setting: the one closest to the schema root (a union rather than its branches). */
function outermostErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  const byTarget = new Map<string, ErrorObject>();
  for (const error of errors) {
    // A key's own failure (under propertyNames) is reported by the propertyNames error that holds it.
    if (error.propertyName !== undefined) continue;
    const params = error.params as {
      additionalProperty?: string;
      missingProperty?: string;
      propertyName?: string;
    };
    const key = params.additionalProperty ?? params.missingProperty ?? params.propertyName ?? '';
    const target = `${error.instancePath}\u0000${key}`;
    const kept = byTarget.get(target);
    if (!kept || depth(error.schemaPath) < depth(kept.schemaPath)) byTarget.set(target, error);
  }
  // A union's branches can also fail below the union's own path; drop those when the union is reported.
  const unions = [...byTarget.values()].filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  return [...byTarget.values()].filter(
    (e) =>
      !unions.some(
        (u) =>
          u !== e &&
          e.instancePath.startsWith(u.instancePath + '/') &&
          e.schemaPath.startsWith(u.schemaPath + '/'),
      ),
  );
}

const depth = (schemaPath: string): number => schemaPath.split('/').length;

/** `/destinations/0/name` → ['destinations', 0, 'name'], numbering only real array indices. */
/** The value a JSON pointer of ajv's names in `data`. */
function valueAt(data: unknown, pointer: string): unknown {
  let node = data;
  for (const segment of pointerToPath(pointer, data))
    node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[segment] : undefined;
  return node;
}

function pointerToPath(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const path: PathSegment[] = [];
  let node = data;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      path.push(Number(segment));
      node = node[Number(segment)] as unknown;
    } else {
      path.push(segment);
      node =
        typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[segment] : undefined;
    }
  }
  return path;
}
