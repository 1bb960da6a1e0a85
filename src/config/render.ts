import { isScalar, stringify } from 'yaml';
import { destinationTypes as registeredTypes } from '../destinations/registry.ts';
import type { DestinationTypes } from './destination-entry.ts';
import type { JsonSchema } from './json-schema.ts';
import type { LoadedConfig } from './load.ts';
import { isPlainObject } from './plain.ts';
import { destinationCommonSchema, nativeSchema } from './schema.ts';
import type { DestinationConfig, EyrieConfig } from './types.ts';
import { describeUnits } from './units-walk.ts';

export const MASK = '****';

/** Option (or header) names that hold secrets even when a type forgets to list them. */
const SECRET_NAME = /pass|secret|token|key|auth/i;

/** `scheme://user:password@host` → the userinfo part. */
const URL_USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#@\s]+)@/i;

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
/** `?name=value` and `&name=value` of a URL's query (up to its fragment). */
const URL_QUERY_PARAMETER = /([?&])([^=&#\s]+)=([^&#\s]*)/g;
/**
 * Query parameters that carry credentials in URLs people paste into configs: `?token=`, `?api_key=`,
 * `?access_token=`, and the signatures of pre-signed URLs (Azure's `sig` and Functions' `code`).
 */
const SECRET_QUERY_NAME = /pass|secret|token|key|auth|^sig(nature)?$|^code$/i;

/** The URL with its userinfo and secret-named query values masked; any other string unchanged. */
function maskUrl(text: string): string {
  if (!URL_SCHEME.test(text)) return text;
  const masked = text.replace(URL_USERINFO, `$1${MASK}@`);
  const at = masked.indexOf('?');
  if (at < 0) return masked;
  return (
    masked.slice(0, at) +
    masked
      .slice(at)
      .replace(URL_QUERY_PARAMETER, (whole, separator: string, name: string, value: string) =>
        value !== '' && SECRET_QUERY_NAME.test(name) ? `${separator}${name}=${MASK}` : whole,
      )
  );
}

/**
 * The resolved configuration as native YAML, for `eyrie check`: every default spelled out, sizes and
 * durations in words, every secret shown as `****`. It loads back as the same configuration, apart
 * from the masked secrets.
 */
export function renderConfig(loaded: LoadedConfig, types: DestinationTypes = registeredTypes): string {
  const { config } = loaded;
  const document = describeUnits(
    {
      listen: config.listen,
      auth: { ...config.auth, tokens: config.auth.tokens.map(() => MASK) },
      enrich: config.enrich,
      metrics: config.metrics,
      log: config.log,
      storage: config.storage,
      delivery: config.delivery,
      sources: config.sources,
      exporter: config.exporter,
      destinations: [],
    },
    nativeSchema as unknown as JsonSchema,
  ) as Record<string, unknown>;
  document.destinations = config.destinations.map((d) => renderDestination(d, types));
  const source = loaded.file === undefined ? 'no file' : `${loaded.file} (${loaded.format} format)`;
  const header = [
    `# Eyrie configuration resolved from ${source}, defaults and environment; secrets shown as ${MASK}.`,
    ...loaded.warnings.map((w) => `# note: ${w}`),
  ];
  return `${header.join('\n')}\n${stringify(document, { lineWidth: 0 })}`;
}

/** name, type and filter first, then the type's options, then the delivery settings. */
function renderDestination(destination: DestinationConfig, types: DestinationTypes): Record<string, unknown> {
  const type = types.get(destination.type);
  const { options, request, filter, ...common } = destination;
  const shownCommon = describeUnits(
    {
      ...common,
      ...(Object.keys(filter).length > 0 ? { filter } : {}),
      request: {
        ...request,
        headers: maskNested(request.headers),
        proxy: maskNested(request.proxy),
        auth: {
          ...request.auth,
          password: maskAll(request.auth.password),
          bearer_token: maskAll(request.auth.bearer_token),
        },
      },
    },
    destinationCommonSchema as unknown as JsonSchema,
  ) as Record<string, unknown>;
  const { name, type: typeName, filter: shownFilter, ...delivery } = shownCommon;
  const secret = new Set(type?.secretOptions ?? []);
  const shownOptions = describeUnits(options, type?.optionsSchema as unknown as JsonSchema | undefined);
  const maskedOptions = Object.entries(shownOptions as Record<string, unknown>).map(
    ([key, value]): [string, unknown] => [
      key,
      secret.has(key) || SECRET_NAME.test(key) ? maskAll(value) : maskNested(value),
    ],
  );
  return {
    name,
    type: typeName,
    ...(shownFilter === undefined ? {} : { filter: shownFilter }),
    ...Object.fromEntries(maskedOptions),
    ...delivery,
  };
}

/** Every non-empty string inside `value` becomes the mask. */
function maskAll(value: unknown): unknown {
  // A number shown in another notation (a file mode in octal) holds no secret.
  if (isScalar(value)) return value;
  if (typeof value === 'string') return value === '' ? value : MASK;
  if (Array.isArray(value)) return value.map(maskAll);
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskAll(v)]));
  return value;
}

/** Masks entries with secret-sounding names (headers such as Authorization) and URL credentials. */
function maskNested(value: unknown): unknown {
  if (isScalar(value)) return value;
  if (typeof value === 'string') return maskUrl(value);
  if (Array.isArray(value)) return value.map(maskNested);
  if (isPlainObject(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, SECRET_NAME.test(k) ? maskAll(v) : maskNested(v)]),
    );
  }
  return value;
}

/**
 * Every secret string in the configuration, for redacting logs: ingest tokens, request passwords, bearer
 * tokens and secret-named headers, secret options, and credentials inside URLs. What renderConfig masks.
 */
export function secretValues(config: EyrieConfig, types: DestinationTypes = registeredTypes): string[] {
  const found = new Set<string>(config.auth.tokens);
  const collect = (value: unknown, secret: boolean): void => {
    if (typeof value === 'string') {
      if (secret) found.add(value);
      else collectUrlCredentials(value, found);
    } else if (Array.isArray(value)) value.forEach((v) => collect(v, secret));
    else if (isPlainObject(value)) {
      for (const [k, v] of Object.entries(value)) collect(v, secret || SECRET_NAME.test(k));
    }
  };
  for (const destination of config.destinations) {
    const { request } = destination;
    collect([request.auth.password, request.auth.bearer_token], true);
    // What is sent is `Basic base64(user:password)`: an answer echoing that header shows it so.
    if (request.auth.password !== '')
      found.add(basicCredentials(request.auth.username, request.auth.password));
    collect([request.headers, request.proxy], false);
    const secret = new Set(types.get(destination.type)?.secretOptions ?? []);
    for (const [key, value] of Object.entries(destination.options)) {
      collect(value, secret.has(key) || SECRET_NAME.test(key));
    }
  }
  found.delete('');
  return [...found];
}

/**
 * The password of `scheme://user:password@host` (or the user part when it is a lone token), and the
 * values of secret-named query parameters (as written and decoded).
 */
function collectUrlCredentials(text: string, found: Set<string>): void {
  if (!URL_SCHEME.test(text)) return;
  const query = text.indexOf('?');
  if (query >= 0) {
    for (const [, , name, value] of text.slice(query).matchAll(URL_QUERY_PARAMETER)) {
      if (value === '' || !SECRET_QUERY_NAME.test(name!)) continue;
      found.add(value!);
      try {
        found.add(decodeURIComponent(value!.replaceAll('+', ' ')));
      } catch {
        // Not percent-encoded; the raw form is already there.
      }
    }
  }
  const userinfo = URL_USERINFO.exec(text)?.[2];
  if (userinfo === undefined) return;
  const colon = userinfo.indexOf(':');
  const secret = colon < 0 ? userinfo : userinfo.slice(colon + 1);
  found.add(secret);
  try {
    found.add(decodeURIComponent(secret));
    // Sent as basic auth (webhooks, proxies): the header's form too.
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    found.add(basicCredentials(decodeURIComponent(user), decodeURIComponent(colon < 0 ? '' : secret)));
  } catch {
    // Not percent-encoded; the raw form is already there.
  }
}

/** The base64 part of the `Authorization: Basic` header these credentials make. */
function basicCredentials(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`).toString('base64');
}
