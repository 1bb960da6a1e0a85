import { Type } from 'typebox';
import { headerMap } from '../config/schema.ts';
import { DestinationSettingError } from '../config/errors.ts';
import type { Destination, DestinationType } from './types.ts';
import { toSidekickJson } from '../event/sidekick-json.ts';
import { checkHeaders, createHttpTransport, DEFAULT_CONTENT_TYPE } from './http-transport.ts';

/**
 * Falcosidekick's `webhook` output, byte for byte: one request per event to `address`, body = the
 * event as Falcosidekick's JSON followed by a newline (Go's json.Encoder), headers
 * `User-Agent: Falcosidekick`, `Content-Type: application/json; charset=utf-8`,
 * `Accept-Encoding: gzip`, then `custom_headers` (which may replace any of those, as Go's Header.Set
 * does). Method POST, or PUT.
 *
 * Falcosidekick mapping (`sidekick`): `webhook.address`, `method`, `customheaders` are options;
 * `checkcert` → `request.tls.verify`, `mutualtls` → the global mutual-TLS client certificate and
 * `maxconcurrentrequests` → `queue.concurrency` go through `requestKeys` (see SidekickMapping in
 * ./types.ts); `minimumpriority` is handled by the loader.
 *
 * Differences from Falcosidekick: any 2xx counts as success (it accepts 200/201/202/204 only);
 * 301, 302 and 303 are not followed (Go repeats the request as a GET without the event; 307 and 308
 * are followed as in Go); a method other than POST/PUT is an error (it silently used POST).
 */
export interface WebhookOptions {
  address: string;
  /** POST or PUT, any case; '' is POST (Falcosidekick sends POST for anything but PUT). */
  method: string;
  custom_headers: Record<string, string>;
}

export const webhookOptionsSchema = Type.Object(
  {
    address: Type.String({
      pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$',
      expect: 'an http:// or https:// URL',
    }),
    method: Type.String({
      pattern: '^([Pp][Oo][Ss][Tt]|[Pp][Uu][Tt])?$',
      default: 'POST',
      expect: 'POST or PUT',
    }),
    custom_headers: headerMap(),
  },
  { additionalProperties: false },
);

/** Falcosidekick's User-Agent on every output request (outputs/client.go). */
export const SIDEKICK_USER_AGENT = 'Falcosidekick';

export const webhookDestination: DestinationType<WebhookOptions> = {
  type: 'webhook',
  optionsSchema: webhookOptionsSchema,
  // Header values are typically tokens (Authorization, X-Api-Key…).
  secretOptions: ['custom_headers'],
  sidekick: {
    section: 'webhook',
    enabledBy: 'address',
    keys: { address: 'address', method: 'method', customheaders: 'custom_headers' },
    requestKeys: {
      checkcert: 'tls.verify',
      mutualtls: 'mutual_tls',
      maxconcurrentrequests: 'queue.concurrency',
    },
  },
  create(options, context): Destination {
    const method = (options.method || 'POST').toUpperCase();
    if (method !== 'POST' && method !== 'PUT') {
      throw new DestinationSettingError(
        context.name,
        'method',
        `must be POST or PUT, not "${options.method}"`,
      );
    }
    checkHeaders(context.name, 'custom_headers', options.custom_headers ?? {});
    const transport = createHttpTransport(context.request, {
      name: context.name,
      baseUrl: options.address,
      userAgent: SIDEKICK_USER_AGENT,
      logger: context.logger,
    });
    const headers = { ...(options.custom_headers ?? {}) };
    return {
      name: context.name,
      type: 'webhook',
      async send(events) {
        // One request per event, as Falcosidekick; the type declares no batch, so this is one event.
        for (const event of events) {
          await transport.send({
            method,
            body: toSidekickJson(event) + '\n',
            contentType: DEFAULT_CONTENT_TYPE,
            headers,
          });
        }
      },
      close: () => transport.close(),
    };
  },
};
