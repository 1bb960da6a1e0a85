import type { ConfigIssue } from './errors.ts';

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

/** Where a value (or a key) came from. */
export interface Origin {
  file?: string;
  line?: number;
  column?: number;
  env?: string;
  /** The key path as the user wrote it, when it differs from the native path (Falcosidekick keys). */
  shownPath?: string;
}

interface Entry {
  value?: Origin;
  key?: Origin;
}

/** `listen.tls.port`, `destinations[0].name`, `enrich.custom_fields["k8s.ns.name"]`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** The reverse of formatPath; undefined when `text` is not a path it could have written. */
export function parsePath(text: string): Path | undefined {
  const path: PathSegment[] = [];
  const segment = /^(?:\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\])/;
  let rest = text;
  while (rest !== '') {
    const m = segment.exec(rest);
    if (!m || (path.length === 0 && m[0].startsWith('.'))) return undefined;
    if (m[1] !== undefined) path.push(m[1]);
    else if (m[2] !== undefined) path.push(Number(m[2]));
    else path.push(JSON.parse(m[3]!) as string);
    rest = rest.slice(m[0].length);
  }
  return path.length > 0 ? path : undefined;
}

const keyOf = (path: Path): string => JSON.stringify(path.map(String));

/**
 * Origins of every value and key, by path. The raw tree is plain data that gets rewritten (env overrides,
 * `_file` references, Falcosidekick translation), so positions live beside it rather than inside it.
 */
export class OriginMap {
  private readonly entries = new Map<string, Entry>();

  setValue(path: Path, origin: Origin): void {
    this.entry(path).value = origin;
  }

  setKey(path: Path, origin: Origin): void {
    this.entry(path).key = origin;
  }

  /** Copies the origins of exactly `from` (not below it) to `to`, keeping the path the user wrote. */
  copyOne(from: Path, to: Path): void {
    const entry = this.entries.get(keyOf(from));
    if (!entry) return;
    const target = this.entry(to);
    const shown = (origin: Origin): Origin => ({
      ...origin,
      shownPath: origin.shownPath ?? formatPath(from),
    });
    if (entry.value) target.value = shown(entry.value);
    if (entry.key) target.key = shown(entry.key);
  }

  /** Records a value set from outside the file (an env var): it replaces whatever was below `path`. */
  replace(path: Path, origin: Origin): void {
    const prefix = keyOf(path).slice(0, -1);
    for (const k of [...this.entries.keys()]) {
      if (k === keyOf(path) || k.startsWith(prefix + ',')) this.entries.delete(k);
    }
    this.entries.set(keyOf(path), { value: origin, key: origin });
  }

  /** The origin of the value at `path`, else of the nearest ancestor (a default filled in below it). */
  value(path: Path): Origin | undefined {
    for (let n = path.length; n >= 0; n--) {
      const found = this.entries.get(keyOf(path.slice(0, n)))?.value;
      if (found) return found;
    }
    return undefined;
  }

  /** The origin of the key that names `path`, falling back to its value. */
  key(path: Path): Origin | undefined {
    return this.entries.get(keyOf(path))?.key ?? this.value(path);
  }

  /**
   * Copies the origins of `from` and everything below it to `to` (a value that moved). Each copy keeps the
   * path the user wrote: `shownPath(rest)` when given, else the original label or `from`'s own path.
   */
  copy(from: Path, to: Path, shownPath?: (rest: Path) => string): void {
    const prefix = from.map(String);
    for (const [k, entry] of [...this.entries]) {
      const segments = JSON.parse(k) as string[];
      if (segments.length < prefix.length || prefix.some((s, i) => segments[i] !== s)) continue;
      const rest = segments.slice(prefix.length).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
      const target = this.entry([...to, ...rest]);
      const label = (origin: Origin): string =>
        shownPath?.(rest) ?? origin.shownPath ?? formatPath([...from, ...rest]);
      if (entry.value) target.value = { ...entry.value, shownPath: label(entry.value) };
      if (entry.key) target.key = { ...entry.key, shownPath: label(entry.key) };
    }
  }

  private entry(path: Path): Entry {
    const k = keyOf(path);
    let entry = this.entries.get(k);
    if (!entry) {
      entry = {};
      this.entries.set(k, entry);
    }
    return entry;
  }
}

/** Collects issues, locating each through the origin map. */
export class Issues {
  readonly list: ConfigIssue[] = [];
  readonly origins: OriginMap;

  constructor(origins: OriginMap) {
    this.origins = origins;
  }

  /** A problem with the value at `path`. */
  atValue(path: Path, message: string): void {
    this.add(path, this.origins.value(path), message);
  }

  /** A problem with the key that names `path` (unknown or misplaced keys). */
  atKey(path: Path, message: string): void {
    this.add(path, this.origins.key(path), message);
  }

  add(path: Path, origin: Origin | undefined, message: string): void {
    const shown = origin?.shownPath ?? formatPath(path);
    const issue: ConfigIssue = { path: shown, message };
    if (origin?.env !== undefined) issue.env = origin.env;
    if (origin?.file !== undefined) issue.file = origin.file;
    if (origin?.line !== undefined) issue.line = origin.line;
    if (origin?.column !== undefined) issue.column = origin.column;
    this.list.push(issue);
  }
}
