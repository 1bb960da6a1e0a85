import { SYSCALL_SOURCE, EventError, toFalcoEvent, type FalcoEvent } from '../../event/falco-event.ts';
import { parseJson, type JsonObject, type JsonValue } from '../../event/json.ts';
import { PRIORITIES } from '../../event/priority.ts';
import type { FalcoOutputResponse, ProtoTimestamp } from './falco-proto.ts';

/** `falco.schema.source` numbers (the deprecated field 3) → source names; 3 stands for any plugin. */
const DEPRECATED_SOURCES = ['syscall', 'k8s_audit', 'internal', 'plugin'];

/** How Falco's gRPC output writes a field that has no value (its JSON output writes null). */
const NOT_AVAILABLE = '<NA>';

const NANOS_PER_SECOND = 1_000_000_000;

/** A protobuf Timestamp as RFC 3339 UTC with 9 fractional digits, as Falco's JSON output writes it. */
export function timestampToRfc3339(timestamp: ProtoTimestamp | null | undefined): string {
  if (!timestamp) throw new EventError('missing "time"', 'time');
  const seconds = Number(timestamp.seconds);
  const nanos = timestamp.nanos;
  if (!Number.isSafeInteger(seconds) || !Number.isInteger(nanos) || nanos < 0 || nanos >= NANOS_PER_SECOND) {
    throw new EventError(`"time" is not a valid timestamp: ${JSON.stringify(timestamp)}`, 'time');
  }
  const date = new Date(seconds * 1000);
  if (Number.isNaN(date.getTime())) {
    throw new EventError(`"time" is out of range: ${JSON.stringify(timestamp)}`, 'time');
  }
  const wholeSeconds = date.toISOString().slice(0, -'.000Z'.length);
  return `${wholeSeconds}.${String(nanos).padStart(9, '0')}Z`;
}

function sourceOf(response: FalcoOutputResponse): string {
  if (response.source) return response.source;
  return DEPRECATED_SOURCES[response.source_deprecated] ?? SYSCALL_SOURCE;
}

function outputFieldsOf(fields: Record<string, string> | null | undefined): JsonObject {
  const converted: JsonObject = {};
  for (const [key, value] of Object.entries(fields ?? {})) {
    converted[key] = value === NOT_AVAILABLE ? null : value;
  }
  return converted;
}

/**
 * With `json_output: true` Falco puts its whole JSON alert in `output`. That document is the better
 * copy (typed field values, `evt.time`, the message property), so it is used when it is an alert for
 * the same rule; otherwise undefined.
 */
function jsonAlertIn(response: FalcoOutputResponse): JsonObject | undefined {
  if (!response.output.startsWith('{')) return undefined;
  let document: JsonValue;
  try {
    document = parseJson(response.output);
  } catch {
    return undefined;
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) return undefined;
  const alert = document as JsonObject;
  return alert.rule === response.rule ? alert : undefined;
}

/**
 * One `falco.outputs.response` as a FalcoEvent, validated like any other input (throws EventError).
 * Field values are strings on gRPC, with `<NA>` where JSON has null.
 */
export function responseToEvent(response: FalcoOutputResponse): FalcoEvent {
  const priority = PRIORITIES[response.priority];
  if (priority === undefined) {
    throw new EventError(`unknown priority number ${response.priority}: expected 0 to 7`, 'priority');
  }
  const fromResponse: JsonObject = {
    rule: response.rule,
    priority,
    time: timestampToRfc3339(response.time),
    output: response.output,
    output_fields: outputFieldsOf(response.output_fields),
    source: sourceOf(response),
    tags: response.tags ?? [],
    hostname: response.hostname,
  };

  const alert = jsonAlertIn(response);
  if (alert === undefined) return toFalcoEvent(fromResponse); // assigns a fresh uuid
  let document: FalcoEvent;
  try {
    document = toFalcoEvent(alert);
  } catch {
    return toFalcoEvent(fromResponse); // not a valid alert after all; the response is complete
  }
  const merged: JsonObject = {
    ...fromResponse,
    time: document.time,
    output: document.output,
    output_fields: document.output_fields,
  };
  if (document.message !== undefined) merged.message = document.message;
  // The document has these only when Falco is told to include them (tags, hostname) or is recent (source).
  if (document.hostname !== undefined) merged.hostname = document.hostname;
  if (Array.isArray(alert.tags)) merged.tags = document.tags;
  if (typeof alert.source === 'string' && alert.source !== '') merged.source = document.source;
  return toFalcoEvent(merged);
}
