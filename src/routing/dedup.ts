/**
 * Per-destination deduplication (`destinations[].dedup`): drops an event identical to one first seen
 * less than `window` ms ago.
 *
 * - Identity: the rule plus the string forms (see fieldString) of the configured fields; an absent
 *   field and a null field each have their own marker, distinct from '' and from each other. The names
 *   `hostname`, `source`, `priority` and `uuid` read the event's own values (Falco's output fields all
 *   have a class prefix such as `proc.`). With no fields configured: the rule, hostname, source and the
 *   output text without its leading time, which Falco's output starts with and no two alerts share
 *   (every output field instead when the event has no output text).
 * - The window starts at a key's FIRST occurrence and is not extended by duplicates: a steady stream of
 *   identical events passes one event per window (a rate limit per key), not one per quiet period.
 * - Memory is bounded: keys sit in a Map in first-seen order, expired ones are evicted from the front
 *   on every call, and beyond DEDUP_MAX_KEYS settled keys the oldest are evicted (their next event
 *   passes). A key counts as settled once its batch is (see settled()): the keys of batches still
 *   waiting for the journal, which a refusal will forget, never push out the key of a taken event.
 *   Keys longer than 256 characters are stored as their SHA-256 digest.
 * - Falcosidekick's test event is identified by its uuid alone: every `POST /test` makes a new one and
 *   passes, while the same test event sent again (a retried forward, a forwarding loop) is dropped.
 */
import { hash } from 'node:crypto';
import type { DedupConfig } from '../config/types.ts';
import { TEST_RULE, type FalcoEvent } from '../event/falco-event.ts';
import { fieldString, fieldValue } from './filter.ts';

/** Hard cap on remembered keys per Deduplicator. */
export const DEDUP_MAX_KEYS = 100_000;
const LONG_KEY = 256;

/** Falco's output time: `%evt.time` (`13:45:01.123456789`) or ISO 8601 (`time_format_iso_8601`). */
const LEADING_TIME = /^(?:\d{2}:\d{2}:\d{2}\.\d+|\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})?): /;

/** Dedup field names that read the event itself rather than its output fields. */
const EVENT_VALUES: Record<string, (event: FalcoEvent) => string | undefined> = {
  hostname: (event) => event.hostname,
  source: (event) => event.source,
  priority: (event) => event.priority,
  // The id Falco (or the first Eyrie) gave the event: `fields: [uuid]` drops a batch forwarded twice.
  uuid: (event) => event.uuid,
};

/** Length-prefixed, so no value can imitate a field boundary (an attacker controls e.g. proc.cmdline). */
function part(text: string): string {
  return `${text.length}:${text}`;
}

/**
 * The identity of an event for deduplication. Every component is `<length>:<text>`; an absent field
 * is `-` and a null one `~` (a component otherwise starts with a digit), so distinct inputs never
 * share a key.
 */
/**
 * Output fields that differ on every event (its time, its number): as the leading time is cut from the
 * output text, they are left out of a key made of all output fields.
 */
const PER_EVENT_FIELD = /^evt\.(time|datetime|rawtime|reltime|num)(\.|$)/;

/** Every output field but PER_EVENT_FIELD, in name order: `<name><value>`, the value marked as in dedupKey. */
function outputFieldsPart(fields: FalcoEvent['output_fields']): string {
  let text = '';
  for (const name of Object.keys(fields).sort()) {
    if (PER_EVENT_FIELD.test(name)) continue;
    const value = fields[name];
    text += part(name) + (value === null || value === undefined ? '~' : part(fieldString(value)!));
  }
  return text;
}

export function dedupKey(event: FalcoEvent, fields: readonly string[]): string {
  // Starts with a letter: no other key does (see above).
  if (event.rule === TEST_RULE) return `test:${event.uuid}`;
  let key = part(event.rule);
  if (fields.length === 0) {
    const host = event.hostname === undefined ? '-' : part(event.hostname);
    key += host + part(event.source);
    const text = event.output.replace(LEADING_TIME, '');
    // Falco with `json_include_output_property: false` sends no output: the fields it would have shown
    // tell the events apart instead (else every alert of a rule on a host would be one).
    return text === '' ? key + '=' + outputFieldsPart(event.output_fields) : key + part(text);
  }
  const of = event.output_fields;
  for (let i = 0; i < fields.length; i++) {
    const name = fields[i]!;
    const value = Object.hasOwn(EVENT_VALUES, name) ? EVENT_VALUES[name]!(event) : fieldValue(of, name);
    if (value === undefined) key += '-';
    else if (value === null) key += '~';
    else key += part(fieldString(value)!);
  }
  return key;
}

export class Deduplicator {
  private readonly window: number;
  private readonly fields: readonly string[];
  private readonly now: () => number;
  private readonly maxKeys: number;
  /** Key → when first seen and the ticket that remembered it, in first-seen order. */
  private readonly seen = new Map<string, { first: number; ticket: number }>();
  private lastTicket = 0;
  /** Keys remembered for batches not settled yet (see settled()). */
  private unsettled = 0;

  /**
   * @param now Clock in ms; monotonic by default (immune to wall-clock jumps).
   * @param maxKeys Cap on remembered keys (tests lower it).
   */
  constructor(config: DedupConfig, now: () => number = () => performance.now(), maxKeys = DEDUP_MAX_KEYS) {
    this.window = config.window;
    this.fields = [...config.fields];
    this.now = now;
    this.maxKeys = Math.max(1, maxKeys);
  }

  /** Keys currently remembered. */
  get size(): number {
    return this.seen.size;
  }

  /**
   * Undefined when an identical event was first seen less than `window` ms ago. Otherwise remembers
   * this one and returns the ticket to forget it by, should its batch be refused (see forget()).
   */
  remember(event: FalcoEvent): number | undefined {
    if (!(this.window > 0)) return 0; // nothing remembered: ticket 0 forgets nothing
    const now = this.now();
    this.evictExpired(now);
    const key = this.keyOf(event);
    const seen = this.seen.get(key);
    if (seen !== undefined) {
      if (now - seen.first < this.window) return undefined;
      // Expired but still here (the clock stepped back earlier): re-insert at the back.
      this.seen.delete(key);
    }
    const ticket = ++this.lastTicket;
    this.seen.set(key, { first: now, ticket });
    this.unsettled++;
    return ticket;
  }

  /** True when an identical event was first seen less than `window` ms ago; otherwise remembers this one. */
  isDuplicate(event: FalcoEvent): boolean {
    return this.remember(event) === undefined;
  }

  /**
   * Forgets the key remember() returned `ticket` for: its batch was refused, and the sender's retry
   * must not count as a duplicate. A key remembered since by another event (the first one evicted or
   * expired while its batch waited for the journal) is that event's, and stays.
   */
  forget(event: FalcoEvent, ticket: number): void {
    const key = this.keyOf(event);
    if (this.seen.get(key)?.ticket === ticket) this.seen.delete(key);
  }

  /**
   * One key remember() added is settled: its batch was taken, or refused and the key forgotten. Then
   * evicts the oldest keys while more than the cap are settled. Keys still waiting for the journal
   * are held beyond the cap; they are among the newest, and evicted only once a cap's worth of settled
   * keys is newer than them (a duplicate of theirs may then pass; no event is lost).
   */
  settled(): void {
    // (Never below 0: clear() may have run while batches were waiting.)
    if (this.unsettled > 0) this.unsettled--;
    while (this.seen.size - this.unsettled > this.maxKeys) {
      const oldest = this.seen.keys().next();
      if (oldest.done) return;
      this.seen.delete(oldest.value);
    }
  }

  private keyOf(event: FalcoEvent): string {
    const key = dedupKey(event, this.fields);
    return key.length > LONG_KEY ? '#' + hash('sha256', key, 'base64') : key;
  }

  /** Forgets every key. */
  clear(): void {
    this.seen.clear();
    this.unsettled = 0;
  }

  private evictExpired(now: number): void {
    for (const [key, { first }] of this.seen) {
      if (now - first < this.window) return;
      this.seen.delete(key);
    }
  }
}
