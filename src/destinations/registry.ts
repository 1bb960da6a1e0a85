import type { DestinationType } from './types.ts';
import { stdoutDestination } from './stdout.ts';

/** Every destination type Eyrie ships, by `type` name. */
export const destinationTypes: ReadonlyMap<string, DestinationType<never>> = new Map<string, DestinationType<never>>(
  [stdoutDestination].map((t) => [t.type, t as DestinationType<never>]),
);
