import { rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { timeToNanos } from '../../src/event/falco-event.ts';
import { parsePriority, falcoPriorityNumber } from '../../src/event/priority.ts';
import {
  outputsService,
  versionService,
  type FalcoOutputResponse,
  type FalcoRequest,
  type FalcoVersionResponse,
} from '../../src/sources/grpc/falco-proto.ts';

export interface FakeFalcoOptions {
  /** Listen on this unix socket path (insecure, like Falco); without it, TCP on 127.0.0.1. */
  socket?: string;
  /** TCP with mutual TLS, as Falco requires on every non-unix address (PEM contents); else plaintext. */
  tls?: { ca: Buffer; cert: Buffer; key: Buffer };
  /** TCP port on 127.0.0.1 (0 = any free port); reuse an old server's port to restart it. */
  port?: number;
  /** Serve falco.version.service (default true); false answers UNIMPLEMENTED like a server without it. */
  version?: boolean;
}

export interface FakeFalco {
  /** What a client dials: `unix:///…` or `127.0.0.1:port`. */
  readonly address: string;
  /** TCP port (0 for a unix socket). */
  readonly port: number;
  /** Adds alerts to Falco's global queue; they go out on the next request. */
  push(...responses: FalcoOutputResponse[]): void;
  /** Alerts still in the queue. */
  readonly queued: number;
  /** `sub` request messages received so far (the initial one and every keep-alive). */
  readonly requestsReceived: number;
  /** `sub` streams currently open. */
  readonly subscribers: number;
  /** `get` calls served. */
  readonly getCalls: number;
  /** `version` calls served. */
  readonly versionCalls: number;
  /** Falco shutting down: open streams finish with status OK, then the server closes. */
  stop(): Promise<void>;
  /** Falco killed: connections drop without a status. */
  kill(): void;
}

/** The part of a server stream (`sub` or `get`) that writes alerts. */
interface AlertWriter {
  readonly cancelled: boolean;
  write(response: FalcoOutputResponse, callback: () => void): boolean;
}

const FALCO_VERSION: FalcoVersionResponse = {
  version: '0.43.1',
  major: 0,
  minor: 43,
  patch: 1,
  prerelease: '',
  build: '',
  engine_minor: 0,
  engine_fields_checksum: 'a1b2c3',
  engine_major: 0,
  engine_patch: 0,
  engine_version: '0.57.0',
};

/**
 * A Falco gRPC server (outputs + version services) that behaves like Falco 0.43's: one global queue
 * consumed destructively (concurrent subscribers compete, no fan-out); `sub` writes nothing until it
 * reads a request, then writes while the queue is non-empty and waits for the next request; `get`
 * writes the queue and finishes OK.
 */
export async function startFakeFalco(options: FakeFalcoOptions = {}): Promise<FakeFalco> {
  const queue: FalcoOutputResponse[] = [];
  const openSubs = new Set<grpc.ServerDuplexStream<FalcoRequest, FalcoOutputResponse>>();
  const counts = { requests: 0, gets: 0, versions: 0 };

  /** Writes one alert at a time, each after the previous write completed, as Falco's completion queue does. */
  const drain = (call: AlertWriter, done: () => void) => {
    const next = () => {
      if (call.cancelled) return;
      const response = queue.shift();
      if (response === undefined) {
        done();
        return;
      }
      call.write(response, next);
    };
    next();
  };

  const server = new grpc.Server();
  server.addService(outputsService, {
    sub(call: grpc.ServerDuplexStream<FalcoRequest, FalcoOutputResponse>) {
      openSubs.add(call);
      let draining = false;
      let requestedWhileDraining = false;
      const onRequest = () => {
        if (draining) {
          requestedWhileDraining = true;
          return;
        }
        draining = true;
        drain(call, () => {
          draining = false;
          if (requestedWhileDraining) {
            requestedWhileDraining = false;
            onRequest();
          }
        });
      };
      call.on('data', () => {
        counts.requests++;
        onRequest();
      });
      call.on('end', () => {
        openSubs.delete(call);
        call.end();
      });
      call.on('cancelled', () => openSubs.delete(call));
      call.on('error', () => openSubs.delete(call));
    },
    get(call: grpc.ServerWritableStream<FalcoRequest, FalcoOutputResponse>) {
      counts.gets++;
      drain(call, () => call.end());
    },
  });
  if (options.version !== false) {
    server.addService(versionService, {
      version(
        _call: grpc.ServerUnaryCall<FalcoRequest, FalcoVersionResponse>,
        callback: grpc.sendUnaryData<FalcoVersionResponse>,
      ) {
        counts.versions++;
        callback(null, FALCO_VERSION);
      },
    });
  }

  let bindAddress: string;
  let credentials: grpc.ServerCredentials;
  if (options.socket !== undefined) {
    rmSync(options.socket, { force: true }); // a killed server can leave its socket file behind
    bindAddress = `unix://${options.socket}`;
    credentials = grpc.ServerCredentials.createInsecure();
  } else {
    bindAddress = `127.0.0.1:${options.port ?? 0}`;
    credentials = options.tls
      ? grpc.ServerCredentials.createSsl(
          options.tls.ca,
          [{ cert_chain: options.tls.cert, private_key: options.tls.key }],
          true,
        )
      : grpc.ServerCredentials.createInsecure();
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(bindAddress, credentials, (err, boundPort) => (err ? reject(err) : resolve(boundPort)));
  });

  return {
    address: options.socket !== undefined ? bindAddress : `127.0.0.1:${port}`,
    port: options.socket !== undefined ? 0 : port,
    push(...responses) {
      queue.push(...responses);
    },
    get queued() {
      return queue.length;
    },
    get requestsReceived() {
      return counts.requests;
    },
    get subscribers() {
      return openSubs.size;
    },
    get getCalls() {
      return counts.gets;
    },
    get versionCalls() {
      return counts.versions;
    },
    stop() {
      for (const call of openSubs) call.end();
      openSubs.clear();
      return new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      });
    },
    kill() {
      openSubs.clear();
      server.forceShutdown();
    },
  };
}

/** Falco's deprecated source enum: any source other than these three is a plugin (3). */
const SOURCE_NUMBERS: Record<string, number> = { syscall: 0, k8s_audit: 1, internal: 2 };

/** An output field value as Falco's gRPC output writes it (always a string). */
export function grpcFieldValue(value: unknown): string {
  if (value === null) return '<NA>';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/**
 * What Falco 0.43 with `json_output: false` sends over gRPC for an alert it would write as `jsonLine`:
 * field values as strings with `<NA>` for null, no `evt.time`, the time as seconds + nanos.
 */
export function responseFromJsonAlert(jsonLine: string): FalcoOutputResponse {
  const alert = JSON.parse(jsonLine) as {
    time: string;
    priority: string;
    rule: string;
    output: string;
    output_fields?: Record<string, unknown>;
    hostname?: string;
    tags?: string[];
    source?: string;
  };
  const nanos = timeToNanos(alert.time);
  const outputFields: Record<string, string> = {};
  for (const [key, value] of Object.entries(alert.output_fields ?? {})) {
    if (key !== 'evt.time') outputFields[key] = grpcFieldValue(value);
  }
  const source = alert.source ?? 'syscall';
  return {
    time: { seconds: String(nanos / 1_000_000_000n), nanos: Number(nanos % 1_000_000_000n) },
    priority: falcoPriorityNumber(parsePriority(alert.priority)!),
    source_deprecated: SOURCE_NUMBERS[source] ?? 3,
    rule: alert.rule,
    output: alert.output,
    output_fields: outputFields,
    hostname: alert.hostname ?? '',
    tags: [...(alert.tags ?? [])].sort(),
    source,
  };
}
