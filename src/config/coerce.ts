import { allowedTypes, itemsOf } from './json-schema.ts';
import type { JsonSchema } from './json-schema.ts';

const TRUE = new Set(['true', 't', '1', 'yes', 'on']);
const FALSE = new Set(['false', 'f', '0', 'no', 'off']);

/**
 * Integer text with a leading zero whose decimal and octal readings differ (`0640`): YAML 1.2 reads it
 * as decimal 640, YAML 1.1 readers and Go's viper as octal 416. Eyrie refuses it rather than guess
 * (permission bits written this way silently became other bits).
 */
export function leadingZeroTrap(text: string): boolean {
  const match = /^0(\d+)$/.exec(text);
  if (!match) return false;
  const digits = match[1]!;
  return /[89]/.test(digits) || parseInt(digits, 8) !== parseInt(digits, 10);
}

/**
 * Why `value` is refused where `schema` wants an integer, when it is leading-zero text (`0640`, which
 * the YAML reader and coerceText leave as text); otherwise undefined.
 */
export function leadingZeroProblem(value: unknown, schema: JsonSchema): string | undefined {
  if (typeof value !== 'string' || !allowedTypes(schema).includes('integer')) return undefined;
  const text = value.trim();
  if (!leadingZeroTrap(text)) return undefined;
  const digits = text.replace(/^0+/, '');
  return /[89]/.test(digits)
    ? `${text} has a leading zero, which older YAML readers take for octal (and ${text} is not octal); write ${digits}`
    : `${text} has a leading zero: YAML 1.2 reads it as the decimal number ${digits}, older readers as octal; write 0o${digits} for octal (permission bits) or ${digits}`;
}

/**
 * Turns text (an env var, or a string where Falcosidekick's weakly typed viper would accept one) into the
 * type `schema` wants. Text that does not fit is returned unchanged, so schema validation reports it with
 * the usual message.
 */
export function coerceText(text: string, schema: JsonSchema): unknown {
  const types = allowedTypes(schema);
  const trimmed = text.trim();
  if (types.includes('array')) {
    const items = itemsOf(schema) ?? {};
    return text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((s) => coerceText(s, items));
  }
  if (types.includes('integer') && /^[+-]?\d+$/.test(trimmed) && !leadingZeroTrap(trimmed))
    return Number(trimmed);
  // YAML 1.2's octal form, which the YAML file takes for permission bits (`mode: 0o640`).
  if (types.includes('integer') && /^0o[0-7]+$/i.test(trimmed)) return parseInt(trimmed.slice(2), 8);
  if (types.includes('number') && trimmed !== '' && Number.isFinite(Number(trimmed))) return Number(trimmed);
  if (types.includes('boolean')) {
    if (TRUE.has(trimmed.toLowerCase())) return true;
    if (FALSE.has(trimmed.toLowerCase())) return false;
  }
  return text;
}
