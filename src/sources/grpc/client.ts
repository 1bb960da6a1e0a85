import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { timerDelay } from '../../util/timer.ts';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { GrpcSourceConfig, RetryConfig } from '../../config/types.ts';
import { backoffDelay } from '../../delivery/backoff.ts';
import { acceptWithRetry } from '../accept.ts';
import type { FalcoEvent } from '../../event/falco-event.ts';
import type { CounterHandle } from '../../metrics/hot-counter.ts';
import type { EventSource, SourceContext } from '../source.ts';
import { responseToEvent } from './convert.ts';
import {
  getMethod,
  subMethod,
  versionMethod,
  type FalcoOutputResponse,
  type FalcoRequest,
} from './falco-proto.ts';

/** A session that delivered or stayed open this long was healthy: the next reconnect starts over. */
const STABLE_SESSION_MS = 10_000;
/** How long the call that finds out why a connection failed may take. */
const CONNECTION_ERROR_PROBE_MS = 1000;
/** Events per `pipeline.accept` call: one journal group commit's worth. */
const ACCEPT_BATCH = 512;
/** Events held in memory before the stream is paused (HTTP/2 flow control then stops Falco). */
const MAX_PENDING = 4096;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // HTTP/2 pings notice a Falco behind a dead TCP connection. Falco's C++ server answers pings sent
  // more often than every 5 minutes on a quiet connection with GOAWAY (too_many_pings): not sooner.
  'grpc.keepalive_time_ms': 300_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 0,
};

const EMPTY_REQUEST: FalcoRequest = {};

/** What /healthz shows for one gRPC source. */
export interface GrpcSourceStatus {
  address: string;
  /** A `sub` stream is open (`get`: the last call succeeded). */
  connected: boolean;
  falcoVersion?: string;
  lastError?: string;
  /** Events the pipeline took from this source since start. */
  events: number;
}

/**
 * The grpc-js target for a configured address. A unix socket (`unix:///path`, `unix:/path`, or a bare
 * absolute path, which falco-exporter prefixes with `unix://` too) has no authentication; any other
 * address is TCP, where Falco requires mutual TLS.
 */
export function grpcTarget(address: string): { target: string; unix: boolean } {
  if (address.startsWith('/')) return { target: `unix://${address}`, unix: true };
  if (address.startsWith('unix:/') && !address.startsWith('unix://')) {
    return { target: `unix://${address.slice('unix:'.length)}`, unix: true };
  }
  return { target: address, unix: address.startsWith('unix:') };
}

/** How a session ended, for the log line that announces the reconnection. */
interface SessionEnd {
  /** It delivered events or stayed open STABLE_SESSION_MS: reconnect without growing the backoff. */
  stable: boolean;
  message: string;
  level: 'warn' | 'error';
  err?: unknown;
}

/** A session ended by close(): nothing is logged or retried. */
const CLOSED: SessionEnd = { stable: false, level: 'warn', message: 'closed' };

/** The current call, as far as holding events back is concerned. */
interface ActiveStream {
  pause(): void;
  /** Reads again and, for `sub`, asks Falco for more. */
  resume(): void;
}

function describeGrpcError(err: unknown): { code?: string; details?: string; text: string } {
  const { code, details } = err as Partial<grpc.ServiceError>;
  if (code === undefined) return { text: (err as Error).message };
  const name = grpc.status[code];
  return { code: name, details, text: `${name}: ${details}` };
}

/**
 * Falco's legacy gRPC output (Falco 0.24 to 0.43), dialled as a client like falco-exporter does:
 * `falco.outputs.service/sub` (or `get`, polled), reconnecting forever with backoff.
 *
 * Falco's queue is global and consumed destructively, so a received event is never dropped: when the
 * pipeline refuses events they stay in memory, the stream is paused and no more are requested until
 * the pipeline takes them.
 */
export class GrpcSource implements EventSource {
  readonly kind = 'grpc';
  readonly target: string;
  private readonly config: GrpcSourceConfig;
  private readonly context: SourceContext;
  private readonly logger: Logger;
  private readonly channelTarget: string;
  private readonly unix: boolean;
  private readonly reconnectPolicy: RetryConfig;
  private readonly acceptedCounter: CounterHandle;
  private readonly rejectedCounter: CounterHandle;
  private readonly stopping = new AbortController();

  private running: Promise<void> | undefined;
  private client: grpc.Client | undefined;
  /** The call in progress (version, sub or get), cancelled by close(). */
  private call: grpc.Call | undefined;
  private stream: ActiveStream | undefined;
  private connected = false;
  private falcoVersion: string | undefined;
  private lastError: string | undefined;
  private acceptedEvents = 0;

  /** Received, not yet taken by the pipeline. */
  private readonly pending: FalcoEvent[] = [];
  /** The stream is paused and no requests are sent until `pending` is taken. */
  private holding = false;
  private flushScheduled = false;
  private flushing: Promise<void> | undefined;

  constructor(config: GrpcSourceConfig, context: SourceContext) {
    this.config = config;
    this.context = context;
    this.logger = context.logger;
    this.target = config.address;
    const { target, unix } = grpcTarget(config.address);
    this.channelTarget = target;
    this.unix = unix;
    this.reconnectPolicy = {
      initial_interval: config.reconnect.initial_interval,
      max_interval: config.reconnect.max_interval,
      multiplier: 2,
      jitter: 0.5,
      max_attempts: 0,
      max_elapsed_time: 0,
    };
    this.acceptedCounter = context.metrics.ingestEvents.handle({ source: 'grpc', outcome: 'accepted' });
    this.rejectedCounter = context.metrics.ingestEvents.handle({ source: 'grpc', outcome: 'rejected' });
  }

  start(): void {
    if (this.running !== undefined || this.stopping.signal.aborted) return;
    this.running = this.run();
  }

  ready(): boolean {
    return this.connected;
  }

  status(): GrpcSourceStatus {
    return {
      address: this.config.address,
      connected: this.connected,
      ...(this.falcoVersion !== undefined ? { falcoVersion: this.falcoVersion } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      events: this.acceptedEvents,
    };
  }

  async close(): Promise<void> {
    if (!this.stopping.signal.aborted) {
      this.stopping.abort();
      this.call?.cancel();
      this.client?.close();
    }
    await this.running;
    while (this.flushScheduled || this.flushing !== undefined) {
      await (this.flushing ?? new Promise((resolve) => setImmediate(resolve)));
    }
  }

  private get closed(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Resolves after `ms`, or early when the source closes. */
  private async wait(ms: number): Promise<void> {
    try {
      // timerDelay: past ~24.8 days Node fires after 1 ms (reconnect intervals are settings).
      await sleep(timerDelay(ms), undefined, { signal: this.stopping.signal });
    } catch {
      // closed
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      const end = await this.session();
      this.connected = false;
      if (this.closed) break;
      failures = end.stable ? 1 : failures + 1;
      const delay = backoffDelay(this.reconnectPolicy, failures);
      const error = end.err === undefined ? undefined : describeGrpcError(end.err);
      this.lastError = error ? `${end.message}: ${error.text}` : end.message;
      this.logger[end.level](
        { error: error?.text, code: error?.code, attempts: failures, retryInMs: delay },
        end.message,
      );
      await this.wait(delay);
    }
  }

  /** One connection: connect, read the version, then `sub` or poll `get` until something fails. */
  private async session(): Promise<SessionEnd> {
    let credentials: grpc.ChannelCredentials;
    try {
      credentials = this.credentials();
    } catch (err) {
      return { stable: false, level: 'error', message: (err as Error).message };
    }
    const client = new grpc.Client(this.channelTarget, credentials, CHANNEL_OPTIONS);
    this.client = client;
    try {
      try {
        await this.connect(client);
      } catch (err) {
        return { stable: false, level: 'warn', message: 'cannot connect to Falco', err };
      }
      if (this.closed) return CLOSED;
      await this.readVersion(client);
      if (this.closed) return CLOSED;
      return this.config.method === 'get' ? await this.poll(client) : await this.subscribe(client);
    } finally {
      this.client = undefined;
      client.close();
    }
  }

  /** Insecure on a unix socket; mutual TLS with the configured files (read now, so renewals apply). */
  private credentials(): grpc.ChannelCredentials {
    if (this.unix) return grpc.credentials.createInsecure();
    const { ca_file, cert_file, key_file } = this.config.tls;
    if (!ca_file || !cert_file || !key_file) {
      throw new Error(
        'Falco requires mutual TLS on a TCP address: set tls.ca_file, tls.cert_file and tls.key_file',
      );
    }
    const read = (file: string, key: string): Buffer => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new Error(`tls.${key}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
      }
    };
    return grpc.credentials.createSsl(
      read(ca_file, 'ca_file'),
      read(key_file, 'key_file'),
      read(cert_file, 'cert_file'),
    );
  }

  /**
   * Waits up to connect_timeout for the channel to be ready. Not `client.waitForReady`: when the
   * client is closed during the wait, that reconnects the closed channel and keeps its deadline
   * timer, which holds the process open.
   */
  private connect(client: grpc.Client): Promise<void> {
    const channel = client.getChannel();
    const deadline = Date.now() + this.config.connect_timeout;
    let toldWhy = false;
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.closed) {
          reject(new Error('closed'));
          return;
        }
        const state = channel.getConnectivityState(true);
        if (state === grpc.connectivityState.READY) {
          resolve();
          return;
        }
        if (Date.now() >= deadline) {
          void this.connectionError(client).then(reject);
          return;
        }
        // The channel keeps retrying until the deadline (2 minutes by default): say why at once.
        if (state === grpc.connectivityState.TRANSIENT_FAILURE && !toldWhy) {
          toldWhy = true;
          void this.connectionError(client, 'cannot reach Falco yet').then((err) => {
            this.lastError = err.message;
            this.logger.warn({ err: err.message }, 'Falco is not reachable; still trying');
          });
        }
        channel.watchConnectivityState(state, deadline, check);
      };
      check();
    });
  }

  /** Why the channel does not connect: a call that fails fast reports the last connection error. */
  private connectionError(
    client: grpc.Client,
    message = `no connection within connect_timeout (${this.config.connect_timeout} ms)`,
  ): Promise<Error> {
    return new Promise((resolve) => {
      client.makeUnaryRequest(
        versionMethod.path,
        versionMethod.requestSerialize,
        versionMethod.responseDeserialize,
        EMPTY_REQUEST,
        { deadline: Date.now() + CONNECTION_ERROR_PROBE_MS },
        (err) => {
          // grpc-js appends an empty "Resolution note" to UNAVAILABLE details.
          const details = err?.details.replace(/\.? *Resolution note: *$/, '');
          resolve(new Error(details ? `${message}: ${details}` : message));
        },
      );
    });
  }

  /** Logs Falco's version; a server without the version service is still read from. */
  private readVersion(client: grpc.Client): Promise<void> {
    return new Promise((resolve) => {
      this.call = client.makeUnaryRequest(
        versionMethod.path,
        versionMethod.requestSerialize,
        versionMethod.responseDeserialize,
        EMPTY_REQUEST,
        { deadline: Date.now() + this.config.connect_timeout },
        (err, response) => {
          if (err || !response) {
            const { code, details } = describeGrpcError(err);
            if (!this.closed)
              this.logger.warn({ code, details }, 'cannot read the Falco version; reading alerts anyway');
          } else {
            this.falcoVersion = response.version;
            this.logger.info(
              { falcoVersion: response.version, engineVersion: response.engine_version || undefined },
              'connected to Falco',
            );
          }
          this.call = undefined;
          resolve();
        },
      );
    });
  }

  /**
   * The bidirectional `sub` stream. Falco writes nothing until it reads a request, and after draining
   * its queue waits for the next one: ask at once, then after every keepalive_interval of silence.
   */
  private subscribe(client: grpc.Client): Promise<SessionEnd> {
    return new Promise((resolve) => {
      const openedAt = Date.now();
      let received = 0;
      const call = client.makeBidiStreamRequest(
        subMethod.path,
        subMethod.requestSerialize,
        subMethod.responseDeserialize,
      );
      const askForMore = () => {
        if (!this.holding && !call.writableEnded) call.write(EMPTY_REQUEST);
      };
      const keepalive = setTimeout(function onSilence() {
        askForMore();
        keepalive.refresh();
      }, timerDelay(this.config.keepalive_interval));
      this.call = call;
      this.stream = {
        pause: () => call.pause(),
        resume: () => {
          call.resume();
          askForMore();
          keepalive.refresh();
        },
      };
      call.on('data', (response: FalcoOutputResponse) => {
        received++;
        keepalive.refresh();
        this.receive(response);
      });
      call.on('error', () => {}); // reported by 'status'
      call.on('status', (status: grpc.StatusObject) => {
        clearTimeout(keepalive);
        this.endStream(call);
        const stable = received > 0 || Date.now() - openedAt > STABLE_SESSION_MS;
        if (status.code === grpc.status.OK) {
          resolve({ stable, level: 'warn', message: 'Falco closed the alert stream (shutting down?)' });
        } else {
          resolve({ stable, level: 'warn', message: 'the Falco alert stream failed', err: status });
        }
      });
      this.connected = true;
      this.lastError = undefined;
      this.logger.info({ keepaliveIntervalMs: this.config.keepalive_interval }, 'subscribed to Falco alerts');
      if (this.holding) call.pause();
      else askForMore();
    });
  }

  /** `get`: drain Falco's queue, wait poll_interval (and while events are held), repeat. */
  private async poll(client: grpc.Client): Promise<SessionEnd> {
    let drained = false;
    while (!this.closed) {
      const status = await this.drainOnce(client);
      if (status.code !== grpc.status.OK) {
        return { stable: drained, level: 'warn', message: 'the Falco get call failed', err: status };
      }
      if (!drained) this.logger.info({ pollIntervalMs: this.config.poll_interval }, 'polling Falco alerts');
      drained = true;
      this.connected = true;
      this.lastError = undefined;
      await this.wait(this.config.poll_interval);
      while (this.holding && !this.closed) await this.wait(this.config.poll_interval);
    }
    return CLOSED;
  }

  private drainOnce(client: grpc.Client): Promise<grpc.StatusObject> {
    return new Promise((resolve) => {
      const call = client.makeServerStreamRequest(
        getMethod.path,
        getMethod.requestSerialize,
        getMethod.responseDeserialize,
        EMPTY_REQUEST,
      );
      this.call = call;
      this.stream = { pause: () => call.pause(), resume: () => call.resume() };
      call.on('data', (response: FalcoOutputResponse) => this.receive(response));
      call.on('error', () => {}); // reported by 'status'
      call.on('status', (status: grpc.StatusObject) => {
        this.endStream(call);
        resolve(status);
      });
      if (this.holding) call.pause();
    });
  }

  /** A call is over: responses it still buffers (if paused) are read too; they were taken off Falco's queue. */
  private endStream(call: grpc.ClientReadableStream<FalcoOutputResponse>): void {
    if (this.call === call) {
      this.call = undefined;
      this.stream = undefined;
    }
    call.resume();
  }

  private receive(response: FalcoOutputResponse): void {
    let event: FalcoEvent;
    try {
      event = responseToEvent(response);
    } catch (err) {
      this.rejectedCounter.inc();
      this.logger.error({ err, rule: response.rule }, 'cannot convert an alert from Falco; skipped');
      return;
    }
    this.pending.push(event);
    if (this.pending.length >= MAX_PENDING) this.hold();
    this.scheduleFlush();
  }

  private hold(): void {
    if (this.holding) return;
    this.holding = true;
    this.stream?.pause();
  }

  private release(): void {
    if (!this.holding) return;
    this.holding = false;
    this.stream?.resume();
  }

  /** Responses that arrive in the same event-loop turn go to the pipeline together. */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing !== undefined) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.pending.length > 0) this.scheduleFlush();
      });
    });
  }

  /** Hands `pending` to the pipeline in batches, retrying (stream paused) while it refuses them. */
  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.slice(0, ACCEPT_BATCH);
      const accepted = await acceptWithRetry(
        this.context.pipeline,
        'grpc',
        batch,
        this.logger,
        this.stopping.signal,
        () => this.hold(),
      );
      if (!accepted) {
        this.logger.error(
          { events: this.pending.length },
          'closing while the pipeline refuses events: they are lost (Falco no longer has them)',
        );
        this.pending.length = 0;
        return;
      }
      this.pending.splice(0, batch.length);
      this.acceptedEvents += batch.length;
      this.acceptedCounter.inc(batch.length);
    }
    this.release();
  }
}
