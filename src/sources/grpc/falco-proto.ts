import { fromJSON, type MethodDefinition, type ServiceDefinition } from '@grpc/proto-loader';

/*
 * Falco's legacy gRPC API as of 0.31 to 0.43 (wire-compatible with 0.24 and later; removed in 0.44),
 * written from its interface description (names, field numbers, types, enum aliases), not copied:
 *
 *   package falco.schema;
 *   enum priority { option allow_alias = true; EMERGENCY = 0; … DEBUG = 7; + lower-case and Capitalised aliases }
 *   enum source   { option allow_alias = true; SYSCALL = 0; K8S_AUDIT = 1; INTERNAL = 2; PLUGIN = 3; + aliases }
 *
 *   package falco.outputs;
 *   service service { rpc sub(stream request) returns (stream response); rpc get(request) returns (stream response); }
 *   message request {}
 *   message response {
 *     google.protobuf.Timestamp time = 1; falco.schema.priority priority = 2;
 *     falco.schema.source source_deprecated = 3 [deprecated = true]; string rule = 4; string output = 5;
 *     map<string, string> output_fields = 6; string hostname = 7; repeated string tags = 8; string source = 9;
 *   }
 *
 *   package falco.version;
 *   service service { rpc version(request) returns (response); }
 *   message request {}
 *   message response { string version = 1; uint32 major = 2; … string engine_version = 11; }
 *
 * It is kept here as protobufjs' JSON descriptor, loaded with proto-loader's `fromJSON`, rather than as
 * a .proto file: tsc does not copy .proto files into dist/ (and the package ships dist/ only), a temp
 * file would fail on the read-only root filesystems DaemonSets usually run with, and parsing .proto
 * text would mean importing protobufjs, which is only a transitive dependency.
 */

type Descriptor = Parameters<typeof fromJSON>[0];

/** An enum whose canonical (first) name has aliases with the same number, as Falco declares them. */
function aliasedEnum(names: readonly (readonly string[])[]): Descriptor {
  const values: Record<string, number> = {};
  names.forEach((aliases, number) => {
    for (const name of aliases) values[name] = number;
  });
  return { options: { allow_alias: true }, values } as Descriptor;
}

const emptyMessage = { fields: {} };

const FALCO_API: Descriptor = {
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Timestamp: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
          },
        },
      },
    },
    falco: {
      nested: {
        schema: {
          nested: {
            priority: aliasedEnum([
              ['EMERGENCY', 'emergency', 'Emergency'],
              ['ALERT', 'alert', 'Alert'],
              ['CRITICAL', 'critical', 'Critical'],
              ['ERROR', 'error', 'Error'],
              ['WARNING', 'warning', 'Warning'],
              ['NOTICE', 'notice', 'Notice'],
              ['INFORMATIONAL', 'informational', 'Informational'],
              ['DEBUG', 'debug', 'Debug'],
            ]),
            source: aliasedEnum([
              ['SYSCALL', 'syscall', 'Syscall'],
              ['K8S_AUDIT', 'k8s_audit', 'K8s_audit', 'K8S_audit'],
              ['INTERNAL', 'internal', 'Internal'],
              ['PLUGIN', 'plugin', 'Plugin'],
            ]),
          },
        },
        outputs: {
          nested: {
            service: {
              methods: {
                sub: {
                  requestType: 'request',
                  requestStream: true,
                  responseType: 'response',
                  responseStream: true,
                },
                get: { requestType: 'request', responseType: 'response', responseStream: true },
              },
            },
            request: emptyMessage,
            response: {
              fields: {
                time: { type: 'google.protobuf.Timestamp', id: 1 },
                priority: { type: 'falco.schema.priority', id: 2 },
                source_deprecated: { type: 'falco.schema.source', id: 3, options: { deprecated: true } },
                rule: { type: 'string', id: 4 },
                output: { type: 'string', id: 5 },
                output_fields: { keyType: 'string', type: 'string', id: 6 },
                hostname: { type: 'string', id: 7 },
                tags: { rule: 'repeated', type: 'string', id: 8 },
                source: { type: 'string', id: 9 },
              },
            },
          },
        },
        version: {
          nested: {
            service: { methods: { version: { requestType: 'request', responseType: 'response' } } },
            request: emptyMessage,
            response: {
              fields: {
                version: { type: 'string', id: 1 },
                major: { type: 'uint32', id: 2 },
                minor: { type: 'uint32', id: 3 },
                patch: { type: 'uint32', id: 4 },
                prerelease: { type: 'string', id: 5 },
                build: { type: 'string', id: 6 },
                engine_minor: { type: 'uint32', id: 7 },
                engine_fields_checksum: { type: 'string', id: 8 },
                engine_major: { type: 'uint32', id: 9 },
                engine_patch: { type: 'uint32', id: 10 },
                engine_version: { type: 'string', id: 11 },
              },
            },
          },
        },
      },
    },
  },
} as Descriptor;

/** `google.protobuf.Timestamp` as decoded (`longs: String`) or as given to the encoder. */
export interface ProtoTimestamp {
  seconds: string | number;
  nanos: number;
}

/** `falco.outputs.response` as decoded: snake_case names, enums as numbers, absent fields defaulted. */
export interface FalcoOutputResponse {
  time: ProtoTimestamp | null;
  /** `falco.schema.priority`: 0 = Emergency … 7 = Debug. */
  priority: number;
  /** `falco.schema.source`: 0 syscall, 1 k8s_audit, 2 internal, 3 plugin (any plugin). */
  source_deprecated: number;
  rule: string;
  output: string;
  output_fields: Record<string, string>;
  hostname: string;
  tags: string[];
  /** Falco 0.31+; empty from older servers. */
  source: string;
}

/** `falco.version.response` (fields Falco added later are empty or 0 from older servers). */
export interface FalcoVersionResponse {
  version: string;
  major: number;
  minor: number;
  patch: number;
  prerelease: string;
  build: string;
  engine_minor: number;
  engine_fields_checksum: string;
  engine_major: number;
  engine_patch: number;
  engine_version: string;
}

/** Falco's request messages have no fields (the server ignores their content). */
export type FalcoRequest = Record<string, never>;

const definition = fromJSON(FALCO_API, {
  keepCase: true, // Falco's snake_case field names, as in its JSON output
  longs: String, // Timestamp.seconds is int64
  defaults: true, // proto3 omits zero values on the wire; Falco 0.43 sends `priority: 0` for Emergency
});

/** grpc-js service definitions for Falco's two services (client stubs and the test server). */
export const outputsService = definition['falco.outputs.service'] as ServiceDefinition;
export const versionService = definition['falco.version.service'] as ServiceDefinition;

export const subMethod = outputsService.sub as MethodDefinition<FalcoRequest, FalcoOutputResponse>;
export const getMethod = outputsService.get as MethodDefinition<FalcoRequest, FalcoOutputResponse>;
export const versionMethod = versionService.version as MethodDefinition<FalcoRequest, FalcoVersionResponse>;
