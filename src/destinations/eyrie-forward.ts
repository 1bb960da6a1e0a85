import { Type } from 'typebox';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { Destination, DestinationType } from './types.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import { createHttpTransport, type HttpTransport } from './http-transport.ts';
import { HttpStatusError } from '../delivery/errors.ts';

/**
 * `eyrie`: forwards batches to another Eyrie's ingest (edge → central). One POST per batch, body NDJSON
 * (`application/x-ndjson`), one line per event in Falcosidekick's JSON, which carries the event's uuid:
 * the receiver keeps it, so a batch retried after a lost answer is recognisable downstream.
 * gzip is on by default. `token` is sent as `Authorization: Bearer` (the receiver's `auth.tokens`).
 *
 * The receiver answers 200 `{accepted, rejected, errors: [{index, message}]}`. Rejected events are
 * invalid for it and would fail again on every retry, so they are logged (warn) and the batch
 * resolves. A 413 (batch larger than the receiver's body limit) splits the batch in halves, each sent
 * on its own; any other non-2xx throws HttpStatusError for the delivery engine.
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

interface IngestAnswer {
  accepted?: number;
  rejected?: number;
  errors?: { index?: number; message?: string }[];
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

export const eyrieForwardDestination: DestinationType<EyrieForwardOptions> = {
  type: 'eyrie',
  optionsSchema: eyrieForwardOptionsSchema,
  secretOptions: ['token'],
  batch: { max_events: 500, max_bytes: 1024 * 1024, timeout: 1000 },
  create(options, context): Destination {
    const request = {
      ...context.request,
      gzip: options.gzip ?? true,
      auth: options.token ? { ...context.request.auth, bearer_token: options.token } : context.request.auth,
    };
    const transport: HttpTransport = createHttpTransport(request, {
      name: context.name,
      baseUrl: options.url,
      userAgent: 'Eyrie',
    });
    const logger = context.logger.child({ destination: context.name });

    const post = async (events: readonly FalcoEvent[]): Promise<void> => {
      if (events.length === 0) return;
      const body = events.map((e) => toSidekickJson(e) + '\n').join('');
      let res;
      try {
        res = await transport.send({ method: 'POST', body, contentType: NDJSON });
      } catch (err) {
        if (err instanceof HttpStatusError && err.status === 413 && events.length > 1) {
          const half = Math.ceil(events.length / 2);
          logger.warn(
            { events: events.length },
            'receiver refused the batch as too large (413); sending it in halves',
          );
          await post(events.slice(0, half));
          await post(events.slice(half));
          return;
        }
        throw err;
      }
      const answer = parseAnswer(res.body);
      const rejected = answer?.rejected ?? 0;
      if (rejected > 0) {
        const errors = (answer?.errors ?? []).map((e) => {
          const event = typeof e.index === 'number' ? events[e.index] : undefined;
          return {
            index: e.index,
            message: e.message,
            ...(event ? { uuid: event.uuid, rule: event.rule } : {}),
          };
        });
        logger.warn(
          { accepted: answer?.accepted, rejected, errors },
          `receiver rejected ${rejected} of ${events.length} events as invalid; they are dropped (a retry cannot succeed)`,
        );
      } else if (typeof answer?.accepted === 'number' && answer.accepted !== events.length) {
        logger.warn(
          { sent: events.length, accepted: answer.accepted },
          'receiver accepted a different number of events than sent',
        );
      }
    };

    return {
      name: context.name,
      type: 'eyrie',
      send: post,
      close: () => transport.close(),
    };
  },
};
