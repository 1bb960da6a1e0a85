import { EventError, toFalcoEvent, type FalcoEvent } from '../../event/falco-event.ts';
import { parseJson, type JsonValue } from '../../event/json.ts';

/** An ingest request that must be answered with an error status. */
export class IngestError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly extra: object;
  constructor(status: number, reason: string, message: string, extra: object = {}) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.extra = extra;
  }
}

export interface DecodedBody {
  events: FalcoEvent[];
  /** Events of a batch that were rejected, by position. */
  errors: { index: number; message: string }[];
  /** True for arrays and NDJSON, where some events may be accepted and others rejected. */
  batch: boolean;
}

const RECORD_SEPARATOR = String.fromCharCode(0x1e);
const TEXT_ALERT =
  /^\s*[0-9:]+\.[0-9]+:\s+(Emergency|Alert|Critical|Error|Warning|Notice|Informational|Debug)\b/i;

function mediaType(contentType: string | undefined): string {
  if (contentType === 'application/json') return contentType; // what Falco sends
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

function parseDocument(text: string, what: string): JsonValue {
  try {
    return parseJson(text);
  } catch (err) {
    throw new IngestError(400, 'invalid_json', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** falcosidekick-ui's ingest body `{event, outputs}` → the event inside. */
function unwrapUiBody(value: JsonValue): JsonValue {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !('event' in value)) {
    throw new IngestError(
      400,
      'invalid_event',
      'expected falcosidekick-ui\'s body {"event": {…}, "outputs": […]}',
    );
  }
  return value.event!;
}

function one(value: JsonValue): FalcoEvent {
  try {
    return toFalcoEvent(value);
  } catch (err) {
    if (err instanceof EventError) throw new IngestError(400, 'invalid_event', err.message);
    throw err;
  }
}

/** `values[i]` is ignored where `unparsed` has a message for i: that item was not JSON. */
function many(values: JsonValue[], unparsed?: ReadonlyMap<number, string>): DecodedBody {
  const events: FalcoEvent[] = [];
  const errors: { index: number; message: string }[] = [];
  values.forEach((value, index) => {
    const parseError = unparsed?.get(index);
    if (parseError !== undefined) {
      errors.push({ index, message: parseError });
      return;
    }
    try {
      events.push(toFalcoEvent(looksLikeUiBody(value) ? unwrapUiBody(value) : value));
    } catch (err) {
      errors.push({ index, message: (err as Error).message });
    }
  });
  return { events, errors, batch: true };
}

function looksLikeUiBody(value: JsonValue): boolean {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    'event' in value &&
    !('rule' in value)
  );
}

/**
 * Decodes an ingest body: one Falco event (Falco's http_output), a JSON array or NDJSON of events
 * (batch senders), or falcosidekick-ui's `{event, outputs}` (a Falcosidekick forwarding to us).
 */
export function decodeBody(
  body: unknown,
  contentType: string | undefined,
  shape: 'falco' | 'ui',
): DecodedBody {
  const text = typeof body === 'string' ? body : '';
  const trimmed = text.trim();
  if (trimmed === '') {
    throw new IngestError(400, 'empty_body', 'request body is empty: send a Falco event as JSON');
  }
  const type = mediaType(contentType);
  const first = trimmed[0];

  if (type === 'text/plain' && first !== '{' && first !== '[') {
    const hint = TEXT_ALERT.test(trimmed)
      ? "this looks like Falco's text output: set json_output: true in falco.yaml so http_output sends JSON"
      : 'expected a Falco event as JSON';
    throw new IngestError(400, 'not_json', `text/plain body is not a JSON event: ${hint}`);
  }

  if (type === 'application/x-ndjson' || type === 'application/jsonl' || type === 'application/json-seq') {
    const values: JsonValue[] = [];
    const unparsed = new Map<number, string>();
    let index = 0;
    for (const line of trimmed.split('\n')) {
      // RFC 7464 JSON text sequences start each record with RS (0x1E).
      const l = (line.startsWith(RECORD_SEPARATOR) ? line.slice(1) : line).trim();
      if (l === '') continue;
      try {
        values.push(parseJson(l));
      } catch (err) {
        unparsed.set(index, `line is not valid JSON: ${(err as Error).message}`);
        values.push(null);
      }
      index++;
    }
    return many(values, unparsed);
  }

  const value = parseDocument(trimmed, 'request body');
  if (Array.isArray(value)) {
    if (value.length === 0) throw new IngestError(400, 'empty_batch', 'the JSON array holds no events');
    return many(value);
  }
  if (shape === 'ui' || looksLikeUiBody(value))
    return { events: [one(unwrapUiBody(value))], errors: [], batch: false };
  return { events: [one(value)], errors: [], batch: false };
}
