import type { DestinationType } from './types.ts';
import { stdoutDestination } from './stdout.ts';
import { webhookDestination } from './webhook.ts';
import { fileDestination } from './file.ts';
import { eyrieForwardDestination } from './eyrie-forward.ts';

/** Every destination type Eyrie ships, by `type` name. */
export const destinationTypes: ReadonlyMap<string, DestinationType<never>> = new Map<
  string,
  DestinationType<never>
>(
  [stdoutDestination, webhookDestination, fileDestination, eyrieForwardDestination].map((t) => [
    t.type,
    t as unknown as DestinationType<never>,
  ]),
);
