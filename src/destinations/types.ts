import type { TSchema } from 'typebox';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { Logger } from 'pino';

/** What a destination type's sender gets at start. */
export interface DestinationContext {
  name: string;
  logger: Logger;
}

/** A running destination instance. */
export interface Destination {
  readonly name: string;
  readonly type: string;
  /** Delivers events; throws on failure (the delivery engine classifies and retries). */
  send(events: readonly FalcoEvent[]): Promise<void>;
  close(): Promise<void>;
}

/** How a Falcosidekick config section maps onto this type (see src/config/sidekick.ts). */
export interface SidekickMapping {
  /** Section path in Falcosidekick's YAML, e.g. `webhook` or `aws.sqs`. */
  section: string;
  /** Key under the section whose non-empty value enables the output, e.g. `address`. */
  enabledBy: string;
  /** Section keys (lower-case, as viper sees them) → native option names. Unlisted keys are errors. */
  keys: Record<string, string>;
}

/** One module per destination type implements this. */
export interface DestinationType<Options = Record<string, unknown>> {
  readonly type: string;
  /** Schema of the type-specific options (typebox), with defaults. */
  readonly optionsSchema: TSchema;
  /** Option names that hold secrets (masked by `eyrie check`, redacted in logs). */
  readonly secretOptions: readonly string[];
  readonly sidekick?: SidekickMapping;
  create(options: Options, context: DestinationContext): Destination;
}
