import type { SidekickMapping } from '../destinations/types.ts';
import type { DestinationTypes } from './destination-entry.ts';
import { SIDEKICK_OUTPUTS } from './sidekick-outputs.ts';

/** How a Falcosidekick value is read before it lands on its native setting. */
export type SettingKind =
  /** A string (numbers are accepted and written as text). */
  | 'text'
  /** `listenaddress`: '' or an IP address, as Falcosidekick requires. */
  | 'address'
  /** A number or boolean; strings are converted as viper would. */
  | 'typed'
  /** A YAML list, or a comma-separated string. */
  | 'list'
  /** Like list, with all spaces removed (Falcosidekick's CUSTOMTAGS and prometheus.extralabels). */
  | 'tags'
  /** A map of strings. */
  | 'map';

export interface SidekickSetting {
  /** Lower-case dotted path, as viper sees it. */
  key: string;
  native: readonly string[];
  kind: SettingKind;
}

/** Falcosidekick's own settings and where each lands in Eyrie's config. */
export const SIDEKICK_SETTINGS: readonly SidekickSetting[] = [
  { key: 'listenaddress', native: ['listen', 'address'], kind: 'address' },
  { key: 'listenport', native: ['listen', 'port'], kind: 'typed' },
  { key: 'customfields', native: ['enrich', 'custom_fields'], kind: 'map' },
  { key: 'templatedfields', native: ['enrich', 'templated_fields'], kind: 'map' },
  { key: 'customtags', native: ['enrich', 'custom_tags'], kind: 'tags' },
  { key: 'bracketreplacer', native: ['enrich', 'bracket_replacer'], kind: 'text' },
  { key: 'outputfieldformat', native: ['enrich', 'output_field_format'], kind: 'text' },
  { key: 'tlsserver.deploy', native: ['listen', 'tls', 'enabled'], kind: 'typed' },
  { key: 'tlsserver.certfile', native: ['listen', 'tls', 'cert_file'], kind: 'text' },
  { key: 'tlsserver.keyfile', native: ['listen', 'tls', 'key_file'], kind: 'text' },
  { key: 'tlsserver.mutualtls', native: ['listen', 'tls', 'require_client_cert'], kind: 'typed' },
  { key: 'tlsserver.cacertfile', native: ['listen', 'tls', 'client_ca_file'], kind: 'text' },
  { key: 'tlsserver.notlsport', native: ['listen', 'tls', 'plain_port'], kind: 'typed' },
  { key: 'tlsserver.notlspaths', native: ['listen', 'tls', 'plain_paths'], kind: 'list' },
  { key: 'prometheus.extralabels', native: ['metrics', 'extra_labels'], kind: 'tags' },
];

/** `debug: true` prints every event on stdout; it becomes a `stdout` destination. */
export const DEBUG_KEY = 'debug';

/** Client-side TLS for outputs (see SidekickMapping.requestKeys `mutual_tls` and sidekick-output.ts). */
export const CLIENT_TLS_SETTINGS: readonly string[] = [
  'mutualtlsfilespath',
  'mutualtlsclient.certfile',
  'mutualtlsclient.keyfile',
  'mutualtlsclient.cacertfile',
  'tlsclient.cacertfile',
];

/** The Falcosidekick output sections that a registered destination type translates. */
export function supportedSections(
  types: DestinationTypes,
): Map<string, { type: string; mapping: SidekickMapping }> {
  const sections = new Map<string, { type: string; mapping: SidekickMapping }>();
  for (const type of types.values()) {
    if (type.sidekick)
      sections.set(type.sidekick.section.toLowerCase(), { type: type.type, mapping: type.sidekick });
  }
  return sections;
}

/** Top-level keys that only a Falcosidekick config.yaml has. */
export function sidekickTopLevelKeys(types: DestinationTypes): Set<string> {
  const paths = [
    ...SIDEKICK_SETTINGS.map((s) => s.key),
    ...CLIENT_TLS_SETTINGS,
    DEBUG_KEY,
    ...Object.keys(SIDEKICK_OUTPUTS),
    ...supportedSections(types).keys(),
  ];
  return new Set(paths.map((p) => p.split('.')[0]!));
}

/** Sections whose every key Eyrie knows, so an unknown key in them is a typo. */
export function knownSectionKeys(): Map<string, Set<string>> {
  const sections = new Map<string, Set<string>>();
  for (const path of [...SIDEKICK_SETTINGS.map((s) => s.key), ...CLIENT_TLS_SETTINGS]) {
    const [section, key] = path.split('.');
    if (key === undefined) continue;
    const keys = sections.get(section!) ?? new Set<string>();
    keys.add(key);
    sections.set(section!, keys);
  }
  return sections;
}

/** Falcosidekick's env var for a key path: upper case, `.` → `_` (viper's AutomaticEnv). */
export const sidekickEnvName = (path: string): string => path.toUpperCase().replace(/\./g, '_');
