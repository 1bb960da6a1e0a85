import type { Readable } from 'node:stream';
import type { EyrieConfig } from '../config/types.ts';
import type { EventSource, SourceContext } from './source.ts';

export interface SourceOptions {
  /** Standard input, when `sources.stdin` is on (tests pass a stream). */
  stdin?: Readable;
  onStdinEnd?: () => void;
}

/**
 * Every non-HTTP source the config enables, not yet started. Each kind is loaded only when
 * configured: the gRPC client and its protobuf runtime cost startup time and memory nobody else needs.
 */
export async function createSources(
  config: EyrieConfig,
  context: SourceContext,
  options: SourceOptions = {},
): Promise<EventSource[]> {
  const sources: EventSource[] = [];
  const scoped = (name: string): SourceContext => ({
    ...context,
    logger: context.logger.child({ source: name }),
  });
  if (config.sources.grpc.length > 0) {
    const { GrpcSource } = await import('./grpc/client.ts');
    for (const grpc of config.sources.grpc) sources.push(new GrpcSource(grpc, scoped(grpc.address)));
  }
  if (config.sources.files.length > 0) {
    const { FileSource } = await import('./file/tail.ts');
    for (const file of config.sources.files) sources.push(new FileSource(file, scoped(file.path)));
  }
  if (config.sources.stdin) {
    const { StdinSource } = await import('./stdin.ts');
    sources.push(new StdinSource(scoped('stdin'), options.stdin ?? process.stdin, options.onStdinEnd));
  }
  return sources;
}
