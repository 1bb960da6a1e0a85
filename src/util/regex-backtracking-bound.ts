import { setFlagsFromString } from 'node:v8';

/**
 * Filter regexes (`fields.<name>.regex`, CEL's `matches`) are the operator's, but the text they run on
 * is an alert's, which whoever triggers the rule shapes. V8 runs regexes by backtracking: an
 * ordinary-looking `^(\w+\s?)*$` on a 30-character command line ending in `!` blocked the event loop
 * for a minute (ingest, deliveries and /healthz with it), a few characters more for hours. With this
 * flag, a match that backtracks more than V8's threshold (50,000 steps) is run again by V8's
 * linear-time engine, with the same result; regexes that engine cannot run (backreferences,
 * lookaround, large counted repetitions) keep backtracking. Process-wide, so importing this module
 * is enough; it must run before the regexes are compiled.
 */
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
