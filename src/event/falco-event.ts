import { randomUUID } from 'node:crypto';
import { ExactNumber, parseJson, type JsonObject, type JsonValue } from './json.ts';
import { parsePriority, type Priority } from './priority.ts';

/** One Falco alert as Eyrie handles it, from any source and any Falco version. */
export interface FalcoEvent {
  uuid: string;
  output: string;
  priority: Priority;
  rule: string;
  /** RFC 3339 text as received (upper-case `T`/`Z`), nanoseconds kept. */
  time: string;
  output_fields: JsonObject;
  source: string;
  tags: string[];
  hostname?: string;
  /** Falco's `json_include_message_property` (0.39+). */
  message?: string;
}

/** A problem with one event, phrased for the sender. */
export class EventError extends Error {
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.name = 'EventError';
    this.field = field;
  }
}

/** Falco's own name of its syscall source (the gRPC output's default). */
export const SYSCALL_SOURCE = 'syscall';
/**
 * The source of an event that carries none (Falco < 0.30): Falcosidekick sets `syscalls`, with an s,
 * and every payload and filter downstream sees that.
 */
export const SIDEKICK_DEFAULT_SOURCE = 'syscalls';
/** Falcosidekick's test rule: always source `internal`, bypasses minimum priorities. */
export const TEST_RULE = 'Test rule';

/**
 * RFC 3339 as Go's time parser takes it (Falcosidekick's JSON decoder): a one-digit hour, any number
 * of fraction digits, after `.` or `,`.
 */
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{1,2}):(\d{2}):(\d{2})(?:([.,])(\d+))?([Zz]|[+-]\d{2}:\d{2})$/;
/** Go's zero time, 0001-01-01T00:00:00Z, in milliseconds since the epoch. */
const GO_ZERO_TIME_MS = -62135596800000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Validates an RFC 3339 timestamp as Falcosidekick's Go parser does, or undefined. Returned with `T`/`Z`
 * upper-cased (Go refuses lower case, RFC 3339 allows it), a `,` before the fraction as `.`, and the
 * fraction cut to nanoseconds (Go keeps 9 digits of any number). Refused like Go: second 60, an offset
 * of 24 hours or more (Go takes it, then fails to write the time: Falcosidekick posts an empty body), and
 * Go's zero time, at whatever offset it is written.
 */
export function normalizeTime(text: string): string | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, separator, fraction, zone] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) {
    return undefined;
  }
  if (day > daysInMonth(Number(y), month)) return undefined;
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const [zh, zm] = zone!.slice(1).split(':').map(Number);
    if (zh! > 23 || zm! > 59) return undefined;
    offsetMinutes = (zone![0] === '-' ? -1 : 1) * (zh! * 60 + zm!);
  }
  // Only years 0 and 1 can hold the zero instant (0000-12-31 at a negative offset).
  if ((y === '0001' || y === '0000') && (fraction === undefined || /^0+$/.test(fraction.slice(0, 9)))) {
    const at = new Date(0);
    at.setUTCFullYear(Number(y), month - 1, day);
    at.setUTCHours(Number(h), Number(mi) - offsetMinutes, Number(s), 0);
    if (at.getTime() === GO_ZERO_TIME_MS) return undefined; // Falcosidekick rejects the zero time
  }
  // Falco writes `T`, `Z`, two-digit hours and at most 9 digits after a `.`: the text as it is.
  if (h!.length === 2 && (fraction === undefined || (separator === '.' && fraction.length <= 9)))
    return text.includes('t') || text.includes('z') ? text.toUpperCase() : text;
  const nanos = fraction === undefined ? '' : `.${fraction.slice(0, 9)}`;
  return `${y}-${mo}-${d}T${h!.padStart(2, '0')}:${mi}:${s}${nanos}${zone!.toUpperCase()}`;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days in a month (1–12) of the proleptic Gregorian calendar. */
function daysInMonth(year: number, month: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1]!;
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
}

/** Epoch nanoseconds of a normalized RFC 3339 time, exact. */
export function timeToNanos(time: string): bigint {
  const m = RFC3339.exec(time)!;
  const fraction = (m[8] ?? '').padEnd(9, '0');
  const whole = Date.parse(time.replace(/\.\d+/, ''));
  return BigInt(whole) * 1_000_000n + BigInt(fraction);
}

/** Milliseconds since the epoch (for ordering and retention). */
export function timeToMillis(time: string): number {
  return Number(timeToNanos(time) / 1_000_000n);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof ExactNumber);
}

function optionalString(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new EventError(`"${key}" must be a string, got ${describe(v)}`, key);
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof ExactNumber) return 'a number';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * Turns one decoded JSON value into a FalcoEvent, or throws EventError naming the problem.
 * Accepts every shape Falco has emitted (0.18 to 0.44+), Falcosidekick's re-emitted events
 * (with `uuid`) and falcosidekick-ui's stored ones.
 */
export function toFalcoEvent(value: unknown): FalcoEvent {
  if (!isPlainObject(value)) {
    throw new EventError(`a Falco event must be a JSON object, got ${describe(value)}`);
  }
  const rule = value.rule;
  if (rule === undefined || rule === null || rule === '') throw new EventError('missing "rule"', 'rule');
  if (typeof rule !== 'string')
    throw new EventError(`"rule" must be a string, got ${describe(rule)}`, 'rule');

  const rawPriority = value.priority;
  if (rawPriority === undefined || rawPriority === null || rawPriority === '') {
    throw new EventError('missing "priority"', 'priority');
  }
  if (typeof rawPriority !== 'string') {
    throw new EventError(`"priority" must be a string, got ${describe(rawPriority)}`, 'priority');
  }
  const priority = parsePriority(rawPriority);
  if (priority === undefined) {
    throw new EventError(
      `unknown priority "${rawPriority}": expected one of emergency, alert, critical, error, warning, notice, informational (or info), debug`,
      'priority',
    );
  }

  const rawTime = value.time;
  if (rawTime === undefined || rawTime === null || rawTime === '')
    throw new EventError('missing "time"', 'time');
  if (typeof rawTime !== 'string')
    throw new EventError(`"time" must be an RFC 3339 string, got ${describe(rawTime)}`, 'time');
  const time = normalizeTime(rawTime);
  if (time === undefined) {
    throw new EventError(`"time" is not an RFC 3339 timestamp: "${rawTime.slice(0, 64)}"`, 'time');
  }

  let outputFields: JsonObject;
  const rawFields = value.output_fields;
  if (rawFields === undefined || rawFields === null) outputFields = {};
  else if (isPlainObject(rawFields)) outputFields = rawFields as JsonObject;
  else throw new EventError(`"output_fields" must be an object, got ${describe(rawFields)}`, 'output_fields');

  let tags: string[] = [];
  const rawTags = value.tags;
  if (rawTags !== undefined && rawTags !== null) {
    if (!Array.isArray(rawTags))
      throw new EventError(`"tags" must be an array of strings, got ${describe(rawTags)}`, 'tags');
    for (const t of rawTags) {
      if (typeof t !== 'string')
        throw new EventError(`"tags" must be an array of strings, found ${describe(t)}`, 'tags');
    }
    tags = rawTags as string[];
  }

  const output = optionalString(value, 'output') ?? '';
  const hostname = optionalString(value, 'hostname');
  // Falcosidekick has no `message` field: its decoder skips the key whatever it holds (a number, an
  // object…) and accepts the event, so a `message` that is not a string is dropped, not refused.
  const message = typeof value.message === 'string' ? value.message : undefined;
  let source = optionalString(value, 'source') || SIDEKICK_DEFAULT_SOURCE;
  if (rule === TEST_RULE) source = 'internal';

  const incomingUuid = value.uuid;
  const uuid =
    typeof incomingUuid === 'string' && UUID.test(incomingUuid) ? incomingUuid.toLowerCase() : randomUUID();

  const event: FalcoEvent = { uuid, output, priority, rule, time, output_fields: outputFields, source, tags };
  if (hostname !== undefined && hostname !== '') event.hostname = hostname;
  if (message !== undefined) event.message = message;
  return event;
}

/** Parses one JSON document holding a single Falco event. */
export function parseFalcoEvent(text: string): FalcoEvent {
  let value: JsonValue;
  try {
    value = parseJson(text);
  } catch (err) {
    throw new EventError(`body is not valid JSON: ${(err as Error).message}`);
  }
  return toFalcoEvent(value);
}

/** Falcosidekick's built-in test event (POST /test, `eyrie send --test`). */
export function testEvent(now = new Date()): FalcoEvent {
  return toFalcoEvent({
    output: 'This is a test from falcosidekick',
    source: 'debug',
    priority: 'Debug',
    hostname: 'falcosidekick',
    rule: TEST_RULE,
    time: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    output_fields: { 'proc.name': 'falcosidekick', 'user.name': 'falcosidekick' },
    tags: ['test', 'example'],
  });
}
