import { LineCounter, isAlias, isMap, isScalar, isSeq, parse, parseDocument } from 'yaml';
import type { Alias, Document, Node } from 'yaml';
import { expandVars } from './interpolate.ts';
import { leadingZeroTrap } from './coerce.ts';
import { isPlainObject } from './plain.ts';
import type { Issues, Origin, Path } from './origins.ts';

/** Under `destinations[i].filter.fields.<field>.<condition>`, where values are compared as text. */
function isFilterCondition(path: Path): boolean {
  return path.length >= 6 && path[0] === 'destinations' && path[2] === 'filter' && path[3] === 'fields';
}

/**
 * Parses `text` into plain data, recording the line:column of every key and value and expanding `${VAR}`
 * in string values. Problems go to `issues`; the data is still returned so later checks can run too.
 * Returns `undefined` for an empty document (only comments) or one that does not parse.
 */
export function readYaml(text: string, file: string, env: NodeJS.ProcessEnv, issues: Issues): unknown {
  const lineCounter = new LineCounter();
  // merge: `<<: *anchor` merge keys, which Falcosidekick's reader (viper) takes too.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const at = (offset: number): Origin => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col };
  };
  for (const error of doc.errors) issues.add([], at(error.pos[0]), error.message);
  if (doc.errors.length > 0) return undefined;
  const walker = new Walker(doc, env, issues, at);
  return doc.contents === null ? undefined : walker.walk(doc.contents, []);
}

/**
 * Most aliases a config may expand. Each expands its whole anchor again, so a few nested ones
 * ("billion laughs") would otherwise make millions of values.
 */
const MAX_ALIASES = 1000;

class Walker {
  private readonly doc: Document;
  private readonly env: NodeJS.ProcessEnv;
  private readonly issues: Issues;
  private readonly at: (offset: number) => Origin;

  constructor(doc: Document, env: NodeJS.ProcessEnv, issues: Issues, at: (offset: number) => Origin) {
    this.doc = doc;
    this.env = env;
    this.issues = issues;
    this.at = at;
  }

  /** Nodes being walked through an alias (an alias inside its own anchor would never end). */
  private readonly resolving = new Set<unknown>();
  private aliasesResolved = 0;

  walk(node: unknown, path: Path): unknown {
    if (isAlias(node)) return this.alias(node, path);
    if (isNodeWithRange(node)) this.issues.origins.setValue(path, this.at(node.range[0]));
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      // Merged keys first, each from the first map that has it; the map's own keys then override them.
      for (const pair of node.items) {
        if (!isMergeKey(pair.key)) continue;
        const sources: unknown[] = isSeq(pair.value) ? pair.value.items : [pair.value];
        for (const source of sources) {
          const merged = this.walk(source, path);
          if (isPlainObject(merged)) {
            for (const [k, v] of Object.entries(merged)) if (!Object.hasOwn(out, k)) out[k] = v;
          } else if (isNodeWithRange(source)) {
            this.issues.add(
              path,
              this.at(source.range[0]),
              'a merge key (<<) takes a map, or a list of maps',
            );
          }
        }
      }
      if (isNodeWithRange(node)) this.issues.origins.setValue(path, this.at(node.range[0]));
      for (const pair of node.items) {
        if (isMergeKey(pair.key)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const keyPath = [...path, key];
        if (isNodeWithRange(pair.key)) this.issues.origins.setKey(keyPath, this.at(pair.key.range[0]));
        // A key without a value (`webex:` followed by comments only) is null, as in every YAML reader.
        if (pair.value === null) {
          this.issues.origins.setValue(keyPath, this.issues.origins.key(keyPath) ?? {});
          out[key] = null;
        } else out[key] = this.walk(pair.value, keyPath);
      }
      return out;
    }
    if (isSeq(node)) return node.items.map((item, i) => this.walk(item, [...path, i]));
    if (isScalar(node)) {
      // `0640`: its text, which a string setting keeps as written and an integer one refuses (see
      // leadingZeroTrap), rather than YAML 1.2's decimal reading.
      // A filter condition compares text: `3.10` and `1.0` (image tags) or an integer beyond 2^53 are
      // meant as written, not as the number YAML makes of them (3.1, 1, rounded).
      const source = node.source ?? '';
      if (
        typeof node.value === 'number' &&
        node.type === 'PLAIN' &&
        (leadingZeroTrap(source) || (isFilterCondition(path) && source !== String(node.value)))
      )
        return source;
      return this.scalar(node.value, node.type === 'PLAIN', path);
    }
    return null;
  }

  private alias(node: Alias, path: Path): unknown {
    const origin = this.at(isNodeWithRange(node) ? node.range[0] : 0);
    if (++this.aliasesResolved > MAX_ALIASES) {
      // Only the first time: the walk goes on, but every further alias stays unexpanded.
      if (this.aliasesResolved === MAX_ALIASES + 1)
        this.issues.add(
          path,
          origin,
          `more than ${MAX_ALIASES} aliases (*name) expanded: a config needs far fewer`,
        );
      return null;
    }
    const target = node.resolve(this.doc);
    if (target === undefined) return null; // an unknown anchor: the parser has reported it
    if (this.resolving.has(target)) {
      this.issues.add(path, origin, `alias *${node.source} is inside its own anchor &${node.source}`);
      return null;
    }
    this.resolving.add(target);
    try {
      return this.walk(target, path);
    } finally {
      this.resolving.delete(target);
    }
  }

  private scalar(value: unknown, plain: boolean, path: Path): unknown {
    if (typeof value !== 'string') return value;
    const expanded = expandVars(value, this.env);
    if (!expanded.ok) {
      this.issues.atValue(path, expanded.message);
      return value;
    }
    // `port: ${PORT}` should read like `port: 2802`: an unquoted scalar is re-typed after expansion.
    if (plain && expanded.value !== value && !leadingZeroTrap(expanded.value)) {
      const retyped: unknown = safeParseScalar(expanded.value);
      if (typeof retyped === 'number' || typeof retyped === 'boolean') return retyped;
    }
    return expanded.value;
  }
}

function safeParseScalar(text: string): unknown {
  try {
    return parse(text);
  } catch {
    return text;
  }
}

/** The key of `<<: *anchor` (parsed with `merge: true`, its value is a symbol). */
function isMergeKey(key: unknown): boolean {
  return isScalar(key) && typeof key.value === 'symbol';
}

function isNodeWithRange(node: unknown): node is Node & { range: [number, number, number] } {
  return typeof node === 'object' && node !== null && Array.isArray((node as { range?: unknown }).range);
}
