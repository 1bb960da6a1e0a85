import { Type } from 'typebox';
import type { FalcoEvent } from '../event/falco-event.ts';
import { SEND_DEADLINE_MARGIN_MS, type Destination, type DestinationType } from './types.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import { createHttpTransport, RESPONSE_LIMIT, type HttpTransport } from './http-transport.ts';
import {
  HttpStatusError,
  PartialRejectionError,
  PermanentError,
  type FailedEvents,
  type RejectedEvent,
} from '../delivery/errors.ts';

/**
 * `eyrie`: forwards batches to another Eyrie's ingest (edge → central). One POST per batch, body NDJSON
 * (`application/x-ndjson`), one line per event in Falcosidekick's JSON, which carries the event's uuid:
 * the receiver keeps it, so a batch retried after a lost answer is recognisable downstream.
 * gzip is on by default. `token` is sent as `Authorization: Bearer` (the receiver's `auth.tokens`).
 *
 * The receiver answers 200 `{accepted, rejected, errors: [{index, message}]}`. Rejected events are
 * invalid for it and would fail again on every retry: they go to dead letters (PartialRejectionError)
 * and the rest count as delivered; a batch with no valid event, answered 400 with the same list, goes to
 * dead letters the same way. A 413 (batch larger than the receiver's body limit) splits the batch
 * in halves, each sent on its own whatever became of the other: a half that fails is reported with its
 * error, so that only its events are retried or given up (a single event too large for the receiver
 * does not take the others with it, and a retry does not send a delivered half again). The refused
 * size is remembered, and the parts share the send's time (see `send`). Any other non-2xx of a whole
 * batch throws HttpStatusError for the delivery engine; a 200 that is not an ingest's answer, a
 * PermanentError.
 */
export interface EyrieForwardOptions {
  /** The receiving Eyrie's ingest URL, e.g. https://central:2801/. */
  url: string;
  /** Bearer token accepted by the receiver; '' = none. */
  token: string;
  /** gzip request bodies (default true). */
  gzip: boolean;
}

export const eyrieForwardOptionsSchema = Type.Object(
  {
    url: Type.String({ pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$', expect: 'an http:// or https:// URL' }),
    token: Type.String({ default: '' }),
    gzip: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);

export const NDJSON = 'application/x-ndjson';

/** Kept back from the worker's deadline for the send (gzip, bookkeeping): the outcome must reach it first. */
const SETTLE_MARGIN_MS = 1000;
/** A part of a split batch is not started with less time left than this. */
const MIN_PART_TIME_MS = 1000;

/** What became of a batch's events that were not delivered, by index in the batch. */
interface Outcome {
  rejected: RejectedEvent[];
  failed: FailedEvents[];
}

/** Adds a part's outcome, its indices shifted by `offset` (where the part starts in the batch). */
function addPart(outcome: Outcome, part: Outcome, offset: number): void {
  for (const r of part.rejected) outcome.rejected.push({ ...r, index: r.index + offset });
  for (const f of part.failed) outcome.failed.push({ ...f, indices: f.indices.map((i) => i + offset) });
}

interface IngestAnswer {
  accepted?: number;
  rejected?: number;
  errors?: { index?: number; message?: string }[];
  message?: string;
}

function parseAnswer(body: string): IngestAnswer | undefined {
  if (body.trim() === '') return undefined;
  try {
    const value = JSON.parse(body) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The events of a batch of `count` the receiver says it rejected: those it lists by index with its
 * reason, and, when it rejected more than it listed (it lists its first 100), every unlisted one too,
 * since they cannot be told from accepted events (duplicates, no loss).
 */
function rejectionsIn(answer: IngestAnswer, count: number): RejectedEvent[] {
  const rejected = answer.rejected ?? 0;
  const result: RejectedEvent[] = [];
  if (rejected <= 0) return result;
  const seen = new Set<number>();
  for (const e of answer.errors ?? []) {
    const index = e.index;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count) continue;
    if (seen.has(index)) continue;
    seen.add(index);
    result.push({ index, message: `rejected by the receiver: ${String(e.message)}` });
  }
  if (rejected > seen.size) {
    const message =
      rejected >= count
        ? `rejected by the receiver: ${typeof answer.message === 'string' ? answer.message : 'no valid event in the batch'}`
        : `the receiver rejected ${rejected} events of this batch of ${count} and listed ${seen.size}: this one may have been accepted`;
    for (let index = 0; index < count; index++) {
      if (!seen.has(index)) result.push({ index, message });
    }
  }
  return result;
}

export const eyrieForwardDestination: DestinationType<EyrieForwardOptions> = {
  type: 'eyrie',
  optionsSchema: eyrieForwardOptionsSchema,
  secretOptions: ['token'],
  // Below the receiver's default body_limit (1 MiB) by a margin: the queue counts each event's JSON,
  // and the body adds a newline per event (and the receiver's limit applies after gunzip). A full
  // batch at exactly 1 MiB would be refused (413) and sent again in halves.
  batch: { max_events: 500, max_bytes: 960 * 1024, timeout: 1000 },
  create(options, context): Destination {
    const request = {
      ...context.request,
      gzip: options.gzip ?? true,
      auth: options.token ? { ...context.request.auth, bearer_token: options.token } : context.request.auth,
    };
    const transport: HttpTransport = createHttpTransport(request, {
      name: context.name,
      baseUrl: options.url,
      baseUrlKey: 'url',
      userAgent: 'Eyrie',
      logger: context.logger,
    });
    // The context's logger already names the destination.
    const logger = context.logger;
    /**
     * Size (uncompressed bytes, as the receiver's body_limit counts them) of the smallest body the
     * receiver refused with 413: a larger body is split without asking again, so later batches do not
     * pay a refused round trip per level of halving.
     */
    let refusedBytes = Number.POSITIVE_INFINITY;
    /**
     * `batch.max_bytes`: the queue fills a batch by the size of each event as journaled (Eyrie's
     * JSON), but the body carries Falcosidekick's, which escapes `<`, `>` and `&` (6 bytes for 1; Falco
     * writes `<NA>` for every missing field): a batch the queue counts as full can be a quarter larger
     * here, past the receiver's body_limit. A body whose lines exceed it is split before sending.
     */
    const maxBytes = context.batch?.max_bytes ?? 0;

    /** Sends `events`, splitting at a 413; settles by `deadline` (ms), leaving unsent parts as failed. */
    const post = async (events: readonly FalcoEvent[], deadline: number): Promise<Outcome> => {
      if (events.length === 0) return { rejected: [], failed: [] };
      const body = events.map((e) => toSidekickJson(e) + '\n').join('');
      const bytes = Buffer.byteLength(body);
      if (events.length > 1 && (bytes >= refusedBytes || (maxBytes > 0 && bytes - events.length > maxBytes)))
        return postInHalves(events, deadline);
      const timeLeft = deadline - Date.now();
      if (timeLeft < MIN_PART_TIME_MS) {
        // Only a part of a split batch gets here (a whole batch has request.timeout and more).
        throw Object.assign(
          new Error(
            'not sent: the batch was sent in parts (413) and its time ran out; these events are sent again later',
          ),
          { code: 'ETIMEDOUT' },
        );
      }
      let res;
      try {
        // A 400 lists the receiver's problems (up to 100 of them): kept whole, see below.
        res = await transport.send({
          method: 'POST',
          body,
          contentType: NDJSON,
          errorBodyLimit: RESPONSE_LIMIT,
          timeout: timeLeft,
        });
      } catch (err) {
        if (err instanceof HttpStatusError && err.status === 413 && events.length > 1) {
          refusedBytes = Math.min(refusedBytes, bytes);
          logger.warn(
            { events: events.length, bytes },
            'receiver refused the batch as too large (413); sending it in halves, and larger bodies split from now on',
          );
          return postInHalves(events, deadline);
        }
        // A batch with no valid event for the receiver is answered 400 with the same rejection list as
        // a 200: its events go to dead letters as rejected, each with the receiver's reason.
        if (err instanceof HttpStatusError && err.status === 400) {
          const answer = parseAnswer(err.body);
          if (answer !== undefined && answer.rejected === events.length)
            return { rejected: rejectionsIn(answer, events.length), failed: [] };
        }
        throw err;
      }
      const answer = parseAnswer(res.body);
      if (typeof answer?.accepted !== 'number') {
        // Another path of an Eyrie (`/test` makes its own test event and ignores the body) or another
        // server: counting this as delivered would lose every event it did not take.
        throw new PermanentError(
          `${transport.baseUrl.href} answered ${res.status} without an Eyrie ingest's {"accepted", "rejected"} ` +
            `(${JSON.stringify(res.body.slice(0, 100))}): url must be the receiving Eyrie's ingest path, /`,
        );
      }
      if ((answer.rejected ?? 0) > 0) return { rejected: rejectionsIn(answer, events.length), failed: [] };
      if (answer.accepted !== events.length) {
        logger.warn(
          { sent: events.length, accepted: answer.accepted },
          'receiver accepted a different number of events than sent',
        );
      }
      return { rejected: [], failed: [] };
    };

    /** Each half on its own, one after the other, whatever became of the other. */
    const postInHalves = async (events: readonly FalcoEvent[], deadline: number): Promise<Outcome> => {
      const half = Math.ceil(events.length / 2);
      const outcome: Outcome = { rejected: [], failed: [] };
      for (const offset of [0, half]) {
        const part = events.slice(offset, offset === 0 ? half : events.length);
        let partOutcome: Outcome;
        try {
          partOutcome = await post(part, deadline);
        } catch (partError) {
          partOutcome = { rejected: [], failed: [{ indices: part.map((_, i) => i), error: partError }] };
        }
        addPart(outcome, partOutcome, offset);
      }
      return outcome;
    };

    return {
      name: context.name,
      type: 'eyrie',
      send: async (events) => {
        // The parts of a split batch share the time the worker gives the send: what is delivered by
        // then is reported as delivered, the rest as failed, rather than the worker abandoning the whole
        // batch (and sending its delivered parts again, attempt after attempt).
        const deadline = Date.now() + context.request.timeout + SEND_DEADLINE_MARGIN_MS - SETTLE_MARGIN_MS;
        const { rejected, failed } = await post(events, deadline);
        if (rejected.length > 0 || failed.length > 0) throw new PartialRejectionError(rejected, failed);
      },
      close: () => transport.close(),
    };
  },
};
