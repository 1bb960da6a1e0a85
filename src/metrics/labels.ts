const LABEL_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * The Prometheus label for an output field or custom field key, as Falcosidekick names it (dots become
 * `_`); undefined when Prometheus would refuse the name (Falcosidekick panics on those).
 */
export function fieldLabelName(key: string): string | undefined {
  const name = key.replaceAll('.', '_');
  return LABEL_NAME.test(name) ? name : undefined;
}
