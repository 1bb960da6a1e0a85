import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, locateProblems } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';
import { renderConfig, secretValues } from '../config/render.ts';
import { createLogger, exitAfterLogs, redactSecrets } from '../util/logger.ts';
import { preflight, startEyrie, type RunningEyrie } from '../app.ts';
import type { LoadedConfig } from '../config/load.ts';
import { applyExporterFlags, type ExporterFlags } from './exporter-flags.ts';
import { sendEvents } from './send.ts';
import { timerDelay } from '../util/timer.ts';
import { DeadLetters, type QueueCaps, type Selection } from '../delivery/dead-letters.ts';
import { QueuedEntries, type QueueListing } from '../delivery/queued.ts';
import { JOURNAL_FILE } from '../delivery/journal.ts';
import { lacksDurationUnit, parseDuration } from '../config/units.ts';
import { adoptEarlySignals, releaseEarlySignals } from './early-signals.ts';

// Every command runs in UTC, whatever TZ says. The CEL library converts timestamps through local time
// (`getDayOfYear()` was a day short all summer in a zone with daylight saving, `getHours("UTC")` an hour
// off in its spring-forward gap), where CEL defines them in UTC; nothing Eyrie writes is in local time.
process.env.TZ = 'UTC';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** A repeated option of positive integers (`--id 3 7`). */
function positiveInts(value: string, previous: number[] | undefined): number[] {
  return [...(previous ?? []), positiveInt(value)];
}

/** `--retry-for`: a duration, or `forever`. */
function retryDuration(value: string): number {
  if (value.trim() === 'forever') return Infinity;
  if (lacksDurationUnit(value))
    throw new InvalidArgumentError(`needs a unit: ${value.trim()}s, ${value.trim()}m or ${value.trim()}ms`);
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError('must be a duration such as 30s or 5m, or forever');
  return ms;
}

function load(file: string | undefined) {
  try {
    return loadConfig({ file, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.toString()}\n`);
      process.exit(1);
    }
    throw err;
  }
}

const program = new Command();
program
  .name('eyrie')
  .description('Everything after Falco fires an alert')
  .version(pkg.version, '-v, --version');

program
  .command('serve')
  .description('run every role the config enables (ingest, routing, delivery)')
  .option(
    '-c, --config <file>',
    'config file (native Eyrie YAML or a Falcosidekick config.yaml)',
    process.env.EYRIE_CONFIG,
  )
  // Falcosidekick's flag (`-c, --config-file`), as its chart's extraArgs pass it.
  .addOption(new Option('--config-file <file>').hideHelp())
  .option('--stdin', "also read JSON alerts from standard input (Falco's program_output)")
  .action(async (opts: { config?: string; configFile?: string; stdin?: boolean }) => {
    const loaded = load(opts.configFile ?? opts.config);
    if (opts.stdin) loaded.config.sources.stdin = true;
    await runService(loaded);
  });

/** How long closing may take beyond delivery.shutdown_timeout before the process exits with 1. */
const SHUTDOWN_MARGIN_MS = 20_000;

/**
 * Exits with 1 after listing what preflight finds, each located in the file. The messages quote
 * settings (a URL that is not one), so the config's secrets are redacted as in the log.
 */
function refuseProblems(loaded: LoadedConfig): void {
  const problems = preflight(loaded.config);
  if (problems.length === 0) return;
  const secrets = secretValues(loaded.config);
  for (const p of locateProblems(loaded, problems)) process.stderr.write(`${redactSecrets(p, secrets)}\n`);
  process.exit(1);
}

/** Starts every role of a loaded config and runs until SIGTERM, SIGINT or SIGHUP. */
async function runService(loaded: LoadedConfig): Promise<void> {
  // Refused before anything starts, located in the file as `eyrie check` shows it.
  refuseProblems(loaded);
  const secrets = secretValues(loaded.config);
  const logger = createLogger(loaded.config.log, secrets);
  for (const warning of loaded.warnings) logger.info({ config: loaded.file }, warning);
  // Handlers first: a SIGTERM that arrives while starting (an orchestrator that gave up waiting) must
  // stop Eyrie cleanly once it is up, not kill it with Node's default action.
  let stopping = false;
  const stop = (signal: string, whileLoading = false) => {
    if (stopping) return;
    stopping = true;
    // SIGHUP means "reload" to some supervisors (systemd's ExecReload) and "terminal gone" to others;
    // Node's default action ends the process at once, losing memory queues and sends in flight.
    if (signal === 'SIGHUP')
      logger.warn(
        'SIGHUP: Eyrie does not reload its configuration; it stops cleanly (restart it to apply a change)',
      );
    logger.info(whileLoading ? { signal, whileLoading } : { signal }, 'shutting down');
    // A backstop for a close that hangs: past the sends' own deadline (delivery.shutdown_timeout),
    // closing the journal and the listeners takes moments, so this margin is never reached otherwise.
    const deadline = setTimeout(
      () => {
        logger.error('shutdown deadline passed, exiting');
        exitAfterLogs(logger, 1);
      },
      timerDelay(
        loaded.config.listen.shutdown_delay + loaded.config.delivery.shutdown_timeout + SHUTDOWN_MARGIN_MS,
      ),
    );
    deadline.unref();
    // Signals are handled from the event loop, so `started` (below) is set by the time this runs.
    void started
      .then(async (eyrie) => {
        if (eyrie === undefined) return; // could not start: already exiting with 1
        await eyrie.close();
        logger.info('stopped');
        exitAfterLogs(logger, 0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'shutdown failed; what was not acknowledged is delivered after the next start');
        exitAfterLogs(logger, 1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => stop('SIGHUP'));
  const early = adoptEarlySignals();
  const started: Promise<RunningEyrie | undefined> = startEyrie(loaded.config, logger, {
    onStdinEnd: () => logger.info('standard input ended; still delivering and serving the other sources'),
  }).catch((err: unknown) => {
    logger.fatal({ err }, 'cannot start');
    process.stderr.write(`eyrie: ${redactSecrets((err as Error).message, secrets)}\n`);
    exitAfterLogs(logger, 1);
    return undefined;
  });
  // One that came while loading: handled as if it came now (`started` is set).
  for (const signal of early) stop(signal, true);
  await started;
}

program
  .command('exporter')
  .description(
    "falco-exporter's drop-in: falco_events from Falco's gRPC output on :9376, probes on :19376 (same flags)",
  )
  .option('--client-socket <address>', "unix socket of Falco's gRPC server", 'unix:///run/falco/falco.sock')
  .option('--client-hostname <host>', 'Falco gRPC host (mutual TLS); takes precedence over --client-socket')
  .option('--client-port <port>', 'Falco gRPC port', '5060')
  .option('--client-ca <file>', 'CA of the Falco gRPC server', '/etc/falco/certs/ca.crt')
  .option('--client-cert <file>', 'client certificate for Falco', '/etc/falco/certs/client.crt')
  .option('--client-key <file>', 'client key for Falco', '/etc/falco/certs/client.key')
  .option('--listen-address <address>', 'metrics listener', ':9376')
  .option('--probes-listen-address <address>', 'liveness/readiness listener', ':19376')
  .option('--timeout <duration>', 'deadline of each connection attempt to Falco', '2m')
  .option('--server-ca <file>', 'CA of metrics clients; enables TLS with client certificates', '')
  .option('--server-cert <file>', 'metrics listener certificate (with --server-ca)', '')
  .option('--server-key <file>', 'metrics listener key (with --server-ca)', '')
  .option(
    '-c, --config <file>',
    'optional Eyrie config: destinations, enrichment, more sources',
    process.env.EYRIE_CONFIG,
  )
  .action((opts: ExporterFlags & { config?: string }) => {
    const loaded = load(opts.config);
    try {
      applyExporterFlags(loaded.config, opts);
    } catch (err) {
      process.stderr.write(`eyrie exporter: ${(err as Error).message}\n`);
      process.exit(1);
    }
    return runService(loaded);
  });

program
  .command('check')
  .description('validate a config, print what it enables (secrets masked); exit 1 with located errors')
  .option('-c, --config <file>', 'config file', process.env.EYRIE_CONFIG)
  .action((opts: { config?: string }) => {
    const loaded = load(opts.config);
    for (const warning of loaded.warnings) process.stderr.write(`note: ${warning}\n`);
    refuseProblems(loaded);
    process.stdout.write(renderConfig(loaded));
  });

program
  .command('send')
  .description(
    'post Falco events (NDJSON or a JSON array) from FILE or - (stdin); without FILE, the test event',
  )
  .argument('[file]', 'events file, or - for stdin (Falco program_output)')
  .option('--url <url>', 'ingest URL', 'http://127.0.0.1:2801/')
  .option('--token <token>', 'bearer token (or EYRIE_TOKEN)', process.env.EYRIE_TOKEN)
  .option('--batch <n>', 'events per request (NDJSON); default 1 for stdin, 500 for files', positiveInt)
  .option('--concurrency <n>', 'requests in flight', positiveInt, 4)
  .option('--insecure', 'do not verify the server certificate')
  .option(
    '--retry-for <duration>',
    'keep retrying events the receiver cannot take yet for this long (e.g. 30s, 5m; 0 = no retry; forever)',
    retryDuration,
  )
  .option('--no-progress', 'no progress bar')
  .action(
    async (
      file: string | undefined,
      opts: {
        url: string;
        token?: string;
        batch?: number;
        concurrency: number;
        insecure?: boolean;
        retryFor?: number;
        progress: boolean;
      },
    ) => {
      const summary = await sendEvents(
        file,
        {
          url: opts.url,
          ...(opts.token ? { token: opts.token } : {}),
          batch: opts.batch ?? (file === '-' ? 1 : 500),
          concurrency: file === '-' && opts.batch === undefined ? 1 : opts.concurrency,
          ...(opts.progress ? {} : { progress: false }),
          insecure: Boolean(opts.insecure),
          ...(opts.retryFor === undefined ? {} : { retryForMs: opts.retryFor }),
        },
        (line) => process.stderr.write(`${line}\n`),
      );
      const unique = [...new Set(summary.errors)].slice(0, 10);
      for (const e of unique) process.stderr.write(`error: ${e}\n`);
      process.stdout.write(
        `sent ${summary.sent}, accepted ${summary.accepted}, rejected ${summary.rejected}, failed ${summary.failed}\n`,
      );
      process.exitCode = summary.rejected + summary.failed > 0 ? 1 : 0;
    },
  );

/**
 * The dead letters (or queued entries: `open`), and the config: read for storage.path when there is
 * no `--data-dir`, and by `replay` and `eyrie queue` whenever one is named (`-c` or EYRIE_CONFIG), to
 * check destinations and caps.
 */
function openJournal<T>(
  opts: { config?: string; dataDir?: string },
  open: (dataDir: string) => T,
  readConfig: 'when named' | 'for storage.path' = 'for storage.path',
): { store: T; loaded: LoadedConfig | undefined } {
  const wanted = opts.dataDir === undefined || (readConfig === 'when named' && opts.config !== undefined);
  const loaded = wanted ? load(opts.config) : undefined;
  const dataDir = opts.dataDir ?? loaded!.config.storage.path;
  // Opening creates a journal: a mistyped --data-dir would read as an empty one ("no dead letters").
  if (journalAbsent(join(dataDir, JOURNAL_FILE))) {
    process.stderr.write(
      `eyrie: no journal in ${dataDir} (${JOURNAL_FILE}): check --data-dir or storage.path (Eyrie creates it when it first runs with a disk destination)\n`,
    );
    process.exit(1);
  }
  try {
    return { store: open(dataDir), loaded };
  } catch (err) {
    // A damaged, missing or read-only journal: one line naming the file, as `serve` says it.
    process.stderr.write(`eyrie: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

/**
 * Whether the journal is known not to exist. One this user may not reach (a data directory 0700 of
 * the user Eyrie runs as: existsSync says false) is left to the opening, which names the cause.
 */
function journalAbsent(file: string): boolean {
  try {
    return statSync(file, { throwIfNoEntry: false }) === undefined;
  } catch {
    return false;
  }
}

function openDeadLetters(
  opts: { config?: string; dataDir?: string },
  readConfig: 'when named' | 'for storage.path' = 'for storage.path',
): { store: DeadLetters; loaded: LoadedConfig | undefined } {
  return openJournal(opts, (dir) => new DeadLetters(dir), readConfig);
}

/** Ids given with `--id` that are no dead letter's: said (as `show` says it), exit code 1. */
function checkIds(store: DeadLetters, ids: number[] | undefined): void {
  for (const id of store.missing(ids ?? [])) {
    process.stderr.write(`no dead letter ${id}\n`);
    process.exitCode = 1;
  }
}

/**
 * A `-d NAME` with no dead letters: a typo would otherwise look like an empty list. Exits 1 when the
 * config has no such destination; without a config, names those that have dead letters.
 */
function checkDestinationName(store: DeadLetters, loaded: LoadedConfig | undefined, name?: string): void {
  if (name === undefined || store.count({ destination: name }) > 0) return;
  if (loaded !== undefined) {
    const names = loaded.config.destinations.map((d) => d.name);
    if (names.includes(name)) return;
    process.stderr.write(
      `no destination "${name}" in ${loaded.file ?? 'the configuration'} (destinations: ${names.join(', ') || 'none'})\n`,
    );
    process.exitCode = 1;
    return;
  }
  const withLetters = store.summary().map((s) => s.destination);
  process.stderr.write(
    `no dead letters of "${name}" (dead letters are kept for: ${withLetters.join(', ') || 'none'})\n`,
  );
}

function progressReporter(verb: string): (done: number, total: number) => void {
  if (process.stderr.isTTY) {
    return (done, total) => process.stderr.write(`\r${verb} ${done}/${total}`);
  }
  let last = 0;
  return (done, total) => {
    if (done === total || Date.now() - last > 2000) {
      last = Date.now();
      process.stderr.write(`${verb} ${done}/${total}\n`);
    }
  };
}

const dlq = program
  .command('dlq')
  .description('inspect, replay or purge dead letters (safe while Eyrie runs)');
const dlqOptions = (cmd: Command) =>
  cmd
    .option('-c, --config <file>', 'config file (for storage.path)', process.env.EYRIE_CONFIG)
    .option('--data-dir <dir>', 'data directory (overrides the config)')
    .option('-d, --destination <name>', 'only this destination');

function* map<T>(items: Iterable<T>, line: (item: T) => string): Generator<string> {
  for (const item of items) yield line(item);
}

/** Control characters (C0, DEL, C1) and the backslash that escapes them. */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const NOT_PLAIN = /[\u0000-\u001f\u007f-\u009f\\]/g;
const PLAIN_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * A cell of a tab-separated listing, on one line. A rule comes from whoever posted the alert and an
 * error from the receiver's answer: a newline or tab in them forged a row or a column, and an escape
 * sequence reached the operator's terminal (clearing it, setting its title). Written as JSON writes
 * them (`\n`, `\u001b`), the backslash doubled, so the text stays readable and unambiguous.
 */
function plainCell(text: string): string {
  return text.replace(
    NOT_PLAIN,
    (c) => PLAIN_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function* jsonArray(items: Iterable<unknown>): Generator<string> {
  let first = true;
  for (const item of items) {
    yield `${first ? '[' : ','}${JSON.stringify(item)}`;
    first = false;
  }
  yield first ? '[]\n' : ']\n';
}

/**
 * Writes text to stdout as it is produced, waiting while the reader is behind (a long listing into a
 * pipe holds about 64 KiB, not all of it), and stops quietly when the reader is gone (`| head`).
 */
async function writeAll(texts: Iterable<string>): Promise<void> {
  let failed: NodeJS.ErrnoException | undefined;
  const onError = (err: NodeJS.ErrnoException) => {
    failed ??= err;
    if (err.code !== 'EPIPE') process.exitCode = 1;
  };
  // Left in place: the reader may go away after the last write was handed over.
  process.stdout.on('error', onError);
  let pending = '';
  const flush = async () => {
    // once() rejects on 'error' too: an EPIPE while waiting ends the wait.
    if (!failed && !process.stdout.write(pending)) await once(process.stdout, 'drain').catch(onError);
    pending = '';
  };
  for (const text of texts) {
    pending += text;
    if (pending.length >= 64 * 1024) await flush();
    if (failed) break;
  }
  await flush();
  if (failed && failed.code !== 'EPIPE') throw failed;
}

dlqOptions(dlq.command('list').description('dead letters per destination, or the entries of one destination'))
  .option('-n, --limit <n>', 'entries to show', positiveInt, 50)
  .option('--json', 'JSON output')
  .action(
    async (opts: {
      config?: string;
      dataDir?: string;
      destination?: string;
      limit: number;
      json?: boolean;
    }) => {
      const { store, loaded } = openDeadLetters(opts);
      try {
        checkDestinationName(store, loaded, opts.destination);
        if (opts.destination === undefined) {
          const summary = store.summary();
          if (opts.json) process.stdout.write(JSON.stringify(summary) + '\n');
          else if (summary.length === 0) process.stdout.write('no dead letters\n');
          else
            for (const s of summary)
              process.stdout.write(`${s.destination}\t${s.count}\toldest ${s.oldest}\tnewest ${s.newest}\n`);
        } else {
          const entries = store.entries({ destination: opts.destination }, opts.limit);
          // A listing cut at the limit (50 unless -n) would look like all of them.
          const total = store.count({ destination: opts.destination });
          if (total > opts.limit)
            process.stderr.write(
              `showing ${opts.limit} of ${total} dead letters of "${opts.destination}"; -n ${total} to see them all\n`,
            );
          await writeAll(
            opts.json
              ? jsonArray(entries)
              : map(
                  entries,
                  (e) =>
                    `${e.id}\t${e.failedAt}\t${e.priority}\t${plainCell(e.rule)}\t${e.reason}\t${plainCell(e.error)}\n`,
                ),
          );
        }
      } finally {
        store.close();
      }
    },
  );

dlqOptions(
  dlq
    .command('show')
    .description('one dead letter with its event')
    .argument('<id>', 'dead letter id', positiveInt),
).action((id: number, opts: { config?: string; dataDir?: string }) => {
  const { store } = openDeadLetters(opts);
  try {
    const entry = store.show(id);
    if (!entry) {
      process.stderr.write(`no dead letter ${id}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(JSON.stringify({ ...entry, event: undefined }, null, 2) + '\n' + entry.event + '\n');
  } finally {
    store.close();
  }
});

dlqOptions(
  dlq
    .command('replay')
    .description(
      'put dead letters back on their queues with a fresh retry budget (with a config, only for its durable destinations)',
    ),
)
  .option('--id <ids...>', 'only these ids', positiveInts)
  .action((opts: { config?: string; dataDir?: string; destination?: string; id?: number[] }) => {
    // With a config, dead letters of a destination it lacks (renamed, removed, memory-only) stay:
    // queued for it, no worker would ever read them; and each queue is filled up to its cap only.
    // `--data-dir` alone has no config to check either against.
    const { store, loaded } = openDeadLetters(opts, 'when named');
    try {
      checkDestinationName(store, loaded, opts.destination);
      const selection: Selection = { destination: opts.destination, ids: opts.id };
      checkIds(store, selection.ids);
      const caps = new Map<string, QueueCaps>();
      if (loaded !== undefined) {
        const durable = loaded.config.destinations.filter((d) => d.durability !== 'memory');
        const names = durable.map((d) => d.name);
        for (const [destination, count] of store.outside(selection, names)) {
          process.stderr.write(
            `kept ${count} dead letters of "${destination}": ${loaded.file ?? 'the configuration'} has no durable destination of that name\n`,
          );
          process.exitCode = 1;
        }
        selection.destinations = names;
        for (const d of durable)
          caps.set(d.name, { maxEvents: d.queue.max_events, maxBytes: d.queue.max_bytes });
      }
      const { replayed, kept, tooLarge } = store.replay(selection, progressReporter('looked at'), caps);
      process.stdout.write(`${process.stderr.isTTY ? '\n' : ''}replayed ${replayed} dead letters\n`);
      for (const [destination, count] of kept) {
        const cap = caps.get(destination)!;
        process.stderr.write(
          `kept ${count} dead letters of "${destination}": its queue is at its cap (queue.max_events ${cap.maxEvents}, queue.max_bytes ${cap.maxBytes}); replay again once it has drained\n`,
        );
        process.exitCode = 1;
      }
      for (const [destination, count] of tooLarge) {
        process.stderr.write(
          `kept ${count} dead letters of "${destination}": each is larger than its queue.max_bytes (${caps.get(destination)!.maxBytes}); raise it to replay them, or purge them\n`,
        );
        process.exitCode = 1;
      }
    } finally {
      store.close();
    }
  });

dlqOptions(dlq.command('purge').description('delete dead letters'))
  .option('--id <ids...>', 'only these ids', positiveInts)
  .action((opts: { config?: string; dataDir?: string; destination?: string; id?: number[] }) => {
    const { store, loaded } = openDeadLetters(opts);
    try {
      checkDestinationName(store, loaded, opts.destination);
      checkIds(store, opts.id);
      const n = store.purge({ destination: opts.destination, ids: opts.id }, progressReporter('purged'));
      process.stdout.write(`${process.stderr.isTTY ? '\n' : ''}purged ${n} dead letters\n`);
    } finally {
      store.close();
    }
  });

const queue = program
  .command('queue')
  .description(
    'list queued entries per destination; purge or move those of a destination the config no longer has (safe while Eyrie runs)',
  );
const queueOptions = (cmd: Command) =>
  cmd
    .option(
      '-c, --config <file>',
      'config file (storage.path, and which destinations are durable)',
      process.env.EYRIE_CONFIG,
    )
    .option('--data-dir <dir>', 'data directory (overrides the config)');

function openQueues(opts: { config?: string; dataDir?: string }): {
  store: QueuedEntries;
  loaded: LoadedConfig | undefined;
  /** The config's durable destinations, when one was read. */
  durable: Map<string, QueueCaps> | undefined;
} {
  const { store, loaded } = openJournal(opts, (dir) => new QueuedEntries(dir), 'when named');
  const durable =
    loaded &&
    new Map(
      loaded.config.destinations
        .filter((d) => d.durability !== 'memory')
        .map((d) => [d.name, { maxEvents: d.queue.max_events, maxBytes: d.queue.max_bytes }]),
    );
  return { store, loaded, durable };
}

/**
 * With a config: refuses to take the entries of a destination it still has as durable, without
 * --force. A running Eyrie is sending them; taking them away is what the operator seldom means.
 */
function refuseLive(
  loaded: LoadedConfig | undefined,
  durable: Map<string, QueueCaps> | undefined,
  name: string,
  force: boolean | undefined,
  verb: string,
): boolean {
  if (force || !durable?.has(name)) return false;
  process.stderr.write(
    `"${name}" is a durable destination of ${loaded!.file ?? 'the configuration'}: Eyrie delivers its queue; ` +
      `--force to ${verb} it anyway (entries being sent at that moment are left)\n`,
  );
  process.exitCode = 1;
  return true;
}

/** A `-d NAME` with nothing queued: said, with the destinations that have entries (a typo looks like "0"). */
function noteNothingQueued(store: QueuedEntries, name: string): void {
  if (store.count(name) > 0) return;
  const withEntries = store.summary().map((s) => s.destination);
  process.stderr.write(
    `no entries queued for "${name}" (entries are queued for: ${withEntries.join(', ') || 'none'})\n`,
  );
}

function noteLeased(name: string, leased: number): void {
  if (leased === 0) return;
  process.stderr.write(
    `left ${leased} entries of "${name}": a running Eyrie is sending them now (they are acknowledged or retried there)\n`,
  );
  process.exitCode = 1;
}

queueOptions(
  queue
    .command('list')
    .description('queued entries per destination, and whether the config has a durable queue for it'),
)
  .option('--json', 'JSON output')
  .action((opts: { config?: string; dataDir?: string; json?: boolean }) => {
    const { store, durable } = openQueues(opts);
    try {
      const rows: QueueListing[] = store
        .summary()
        .map((s) => ({ ...s, durable: durable ? durable.has(s.destination) : null }));
      // The config's durable destinations with nothing queued are listed too: all is delivered.
      for (const name of durable?.keys() ?? [])
        if (!rows.some((r) => r.destination === name))
          rows.push({ destination: name, count: 0, bytes: 0, oldest: null, leased: 0, durable: true });
      rows.sort((a, b) => (a.destination < b.destination ? -1 : a.destination > b.destination ? 1 : 0));
      if (opts.json) {
        process.stdout.write(JSON.stringify(rows) + '\n');
        return;
      }
      if (rows.length === 0) {
        process.stdout.write('no entries queued\n');
        return;
      }
      const table = [
        ['DESTINATION', 'QUEUED', 'BYTES', 'OLDEST', 'LEASED', 'CONFIG'],
        ...rows.map((r) => [
          r.destination,
          String(r.count),
          String(r.bytes),
          r.oldest ?? '-',
          String(r.leased),
          r.durable === null ? '?' : r.durable ? 'durable' : 'orphaned',
        ]),
      ];
      const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
      for (const row of table)
        process.stdout.write(
          row
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join('  ')
            .trimEnd() + '\n',
        );
      if (rows.some((r) => r.durable === false))
        process.stderr.write(
          'orphaned: no worker reads these entries; eyrie queue move -d NAME --to NEW, or eyrie queue purge -d NAME\n',
        );
    } finally {
      store.close();
    }
  });

queueOptions(queue.command('purge').description('delete the entries queued for a destination'))
  .requiredOption('-d, --destination <name>', 'the destination')
  .option('--force', 'also when the config has it as a durable destination (Eyrie is delivering it)')
  .action((opts: { config?: string; dataDir?: string; destination: string; force?: boolean }) => {
    const { store, loaded, durable } = openQueues(opts);
    try {
      if (refuseLive(loaded, durable, opts.destination, opts.force, 'purge')) return;
      noteNothingQueued(store, opts.destination);
      const { purged, leased } = store.purge(opts.destination, progressReporter('looked at'));
      process.stdout.write(`${process.stderr.isTTY ? '\n' : ''}purged ${purged} queued entries\n`);
      noteLeased(opts.destination, leased);
    } finally {
      store.close();
    }
  });

queueOptions(
  queue
    .command('move')
    .description(
      "hand the entries queued for a destination to another one's queue (a renamed destination); with a config, up to its caps",
    ),
)
  .requiredOption('-d, --destination <name>', 'the destination whose entries are moved')
  .requiredOption('--to <name>', 'the destination that takes them')
  .option('--force', 'also when the config has the first as a durable destination (Eyrie is delivering it)')
  .action((opts: { config?: string; dataDir?: string; destination: string; to: string; force?: boolean }) => {
    const { store, loaded, durable } = openQueues(opts);
    try {
      if (opts.to === opts.destination) {
        process.stderr.write('--to names the same destination as -d\n');
        process.exitCode = 1;
        return;
      }
      if (durable !== undefined && !durable.has(opts.to)) {
        // No worker would read them there either.
        process.stderr.write(
          `no durable destination "${opts.to}" in ${loaded!.file ?? 'the configuration'} (durable destinations: ${[...durable.keys()].join(', ') || 'none'})\n`,
        );
        process.exitCode = 1;
        return;
      }
      if (refuseLive(loaded, durable, opts.destination, opts.force, 'move')) return;
      noteNothingQueued(store, opts.destination);
      const cap = durable?.get(opts.to);
      const result = store.move(opts.destination, opts.to, progressReporter('looked at'), cap);
      process.stdout.write(
        `${process.stderr.isTTY ? '\n' : ''}moved ${result.moved} queued entries to "${opts.to}"` +
          (result.duplicates > 0 ? `, deleted ${result.duplicates} already queued there` : '') +
          '\n',
      );
      noteLeased(opts.destination, result.leased);
      if (result.kept > 0) {
        process.stderr.write(
          `left ${result.kept} entries on "${opts.destination}": the queue of "${opts.to}" is at its cap (queue.max_events ${cap!.maxEvents}, queue.max_bytes ${cap!.maxBytes}); move again once it has drained\n`,
        );
        process.exitCode = 1;
      }
      if (result.tooLarge > 0) {
        process.stderr.write(
          `left ${result.tooLarge} entries on "${opts.destination}": each is larger than the queue.max_bytes of "${opts.to}" (${cap!.maxBytes}); raise it to move them, or purge them\n`,
        );
        process.exitCode = 1;
      }
    } finally {
      store.close();
    }
  });

program
  .command('version')
  .description('print the version')
  .action(() => {
    process.stdout.write(`eyrie ${pkg.version} (node ${process.version})\n`);
  });

const SERVICES = new Set(['serve', 'exporter']);
program.hook('preAction', (_program, command) => {
  if (!SERVICES.has(command.name())) releaseEarlySignals();
});
await program.parseAsync(process.argv);
// One-shot commands end here. Exiting explicitly skips the teardown in which better-sqlite3 12 can
// abort on Node 24 (src/store/sqlite.ts); the services keep running and exit from their signal handler.
if (!SERVICES.has(program.args[0] ?? '')) process.exit(process.exitCode ?? 0);
