import type { Logger } from 'pino';
import type { Metrics } from '../../metrics/registry.ts';
import type { Pipeline } from '../../routing/pipeline.ts';
import { JournalUnavailableError } from '../../delivery/journal.ts';
import { decodeBody, IngestError, type DecodedBody } from './decode.ts';
import { testEvent } from '../../event/falco-event.ts';
import { LogThrottle } from '../../util/log-throttle.ts';

/** Decode failures of a body that held no event at all: not counted as a rejected event. */
const NO_EVENT_REASONS = new Set(['empty_body', 'empty_batch']);

/** While the journal refuses events, the refusal is logged at most this often. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** What an ingest request is answered, whichever HTTP layer carried it. */
export interface IngestAnswer {
  status: number;
  /** Absent: an empty body (Falcosidekick answers a single event with an empty 200). */
  body?: string;
  contentType?: string;
}

export type BodyShape = 'falco' | 'ui';

/**
 * The ingest request logic, independent of the HTTP framework: decode, validate, hand to the
 * pipeline, count, and answer. Shared by the fastify routes and the raw fast path for `POST /`.
 */
export class IngestCore {
  private readonly pipeline: Pipeline;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  // Fixed label sets: resolved once, incremented as plain additions.
  readonly requestsAccepted;
  readonly requestsRejected;
  private readonly eventsAccepted;
  private readonly eventsRejected;
  private readonly refusalLog = new LogThrottle(REFUSAL_LOG_INTERVAL_MS);
  /**
   * Refusal lines logged so far, and the last of them whose end was logged: a request begun after
   * a logged refusal and then accepted ends the episode. (A request begun before it may still be
   * accepted by a commit already under way, which says nothing about the journal now.)
   */
  private refusalsLogged = 0;
  private refusalEndLogged = 0;
  /** Valid events of a request answered 503 (not persisted): the sender has to send them again. */
  private readonly eventsRefused;

  constructor(pipeline: Pipeline, metrics: Metrics, logger: Logger) {
    this.pipeline = pipeline;
    this.metrics = metrics;
    this.logger = logger;
    this.requestsAccepted = metrics.sidekickInputs.handle({ source: 'requests', status: 'accepted' });
    this.requestsRejected = metrics.sidekickInputs.handle({ source: 'requests', status: 'rejected' });
    this.eventsAccepted = metrics.ingestEvents.handle({ source: 'http', outcome: 'accepted' });
    this.eventsRejected = metrics.ingestEvents.handle({ source: 'http', outcome: 'rejected' });
    this.eventsRefused = metrics.ingestEvents.handle({ source: 'http', outcome: 'refused' });
    // At 0 from the start, as the drop reasons are: rate() in EyrieIngestJournalUnavailable (and the
    // dashboard's rejections panel) sees the first 503s only if the series existed before them.
    metrics.ingestRejections.handle({ code: '503', reason: 'journal_unavailable' });
  }

  /** An error answer: JSON `{statusCode, error, message}`, counted by status and reason. */
  error(status: number, reason: string, message: string, extra: object = {}): IngestAnswer {
    this.metrics.ingestRejections.inc({ code: String(status), reason });
    return {
      status,
      contentType: 'application/json; charset=utf-8',
      body: JSON.stringify({ statusCode: status, error: reason, message, ...extra }),
    };
  }

  /** Turns anything thrown while ingesting into its answer. */
  failure(err: unknown): IngestAnswer {
    if (err instanceof IngestError) return this.error(err.status, err.reason, err.message, err.extra);
    if (err instanceof JournalUnavailableError) {
      // Never a 200 for what is not on disk. Falco counts any answer as delivered, so say it loudly,
      // but not once per request: at thousands of requests a second that would flood the log.
      const suppressed = this.refusalLog.take();
      if (suppressed !== undefined) {
        this.refusalsLogged++;
        this.logger.error(
          { error: err.message, refusedSinceLastLog: suppressed },
          'journal unavailable: refusing events with 503 (logged every 10 s at most while it lasts)',
        );
      }
      return this.error(503, 'journal_unavailable', err.message);
    }
    this.logger.error({ err }, 'ingest request failed');
    return this.error(500, 'internal_error', (err as Error).message);
  }

  /** The answer, or a promise of it when the events wait for a journal commit. Never rejects. */
  ingest(
    body: unknown,
    contentType: string | undefined,
    shape: BodyShape,
  ): IngestAnswer | Promise<IngestAnswer> {
    let decoded;
    try {
      decoded = decodeBody(body, contentType, shape);
    } catch (err) {
      this.requestsRejected.inc();
      // A body that is not one valid event (bad JSON, a missing field) was meant as one: it counts
      // as a rejected event, as an invalid item of a batch does. An empty body held none.
      if (err instanceof IngestError && err.status === 400 && !NO_EVENT_REASONS.has(err.reason))
        this.eventsRejected.inc();
      return this.failure(err);
    }
    const { events, errors, batch } = decoded;
    if (events.length === 0) {
      this.requestsRejected.inc();
      this.eventsRejected.inc(errors.length);
      const first = errors[0]!;
      const message = batch
        ? `no valid event in the batch (first problem: event ${first.index}: ${first.message})`
        : first.message;
      return this.error(
        400,
        'invalid_event',
        message,
        batch ? { rejected: errors.length, errors: reported(errors) } : {},
      );
    }
    return this.take(decoded, shape, 'http');
  }

  /** `POST /test`: Falcosidekick's test event, counted and persisted as an event sent over HTTP. */
  ingestTest(): IngestAnswer | Promise<IngestAnswer> {
    return this.take({ events: [testEvent()], errors: [], batch: false }, 'falco', 'test');
  }

  /** Hands valid events to the pipeline; the answer once they are persisted, or the refusal. */
  private take(decoded: DecodedBody, shape: BodyShape, source: string): IngestAnswer | Promise<IngestAnswer> {
    const { events } = decoded;
    const handed = this.pipeline.accept(events, source);
    if (handed === undefined) return this.accepted(decoded, shape);
    const refusalsBefore = this.refusalsLogged;
    return handed.then(
      () => {
        if (refusalsBefore > this.refusalEndLogged) this.acceptingAgain(refusalsBefore);
        return this.accepted(decoded, shape);
      },
      (err: unknown) => {
        // Not persisted (journal full, unwritable, shutting down): the request is refused as a whole.
        this.requestsRejected.inc();
        this.eventsRefused.inc(events.length);
        return this.failure(err);
      },
    );
  }

  /** Logs the end of a refusal episode: at most once per refusal line, so a flapping journal cannot flood the log. */
  private acceptingAgain(refusals: number): void {
    this.refusalEndLogged = refusals;
    this.logger.info(
      { refusedSinceLastLog: this.refusalLog.drain() },
      'journal accepting events again: answering 200 once more',
    );
  }

  private accepted({ events, errors, batch }: DecodedBody, shape: BodyShape): IngestAnswer {
    this.requestsAccepted.inc();
    this.eventsAccepted.inc(events.length);
    if (errors.length > 0) this.eventsRejected.inc(errors.length);
    if (shape === 'ui') return { status: 200, contentType: 'application/json', body: '{}' };
    if (!batch) return { status: 200 };
    return {
      status: 200,
      contentType: 'application/json; charset=utf-8',
      body: JSON.stringify({ accepted: events.length, rejected: errors.length, errors: reported(errors) }),
    };
  }
}

/**
 * Problems listed in an answer: the first MAX_REPORTED_ERRORS (`rejected` still counts them all). A
 * 1 MiB body of half a million bad items would otherwise be answered with tens of megabytes.
 */
export const MAX_REPORTED_ERRORS = 100;

function reported<T>(errors: readonly T[]): readonly T[] {
  return errors.length > MAX_REPORTED_ERRORS ? errors.slice(0, MAX_REPORTED_ERRORS) : errors;
}
