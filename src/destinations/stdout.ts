import { Type } from 'typebox';
import type { Destination, DestinationType } from './types.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';

/**
 * Falcosidekick's debug mode: prints each event exactly as it would be sent (Falcosidekick's JSON),
 * one per line. `stream: stderr` keeps stdout free when Eyrie itself logs to stdout.
 */
export const stdoutDestination: DestinationType<{ stream: 'stdout' | 'stderr' }> = {
  type: 'stdout',
  optionsSchema: Type.Object(
    { stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')], { default: 'stdout' }) },
    { additionalProperties: false },
  ),
  secretOptions: [],
  create(options, context): Destination {
    const stream = options.stream === 'stderr' ? process.stderr : process.stdout;
    return {
      name: context.name,
      type: 'stdout',
      send(events) {
        const text = events.map((e) => toSidekickJson(e) + '\n').join('');
        return new Promise<void>((resolve, reject) => {
          stream.write(text, (err) => (err ? reject(err) : resolve()));
        });
      },
      close: () => Promise.resolve(),
    };
  },
};
