import { isUtf8 } from 'node:buffer';

/**
 * UTF-8 text as Go's encoding/json reads it into strings, which Falcosidekick then re-emits: each byte
 * that does not start a valid sequence becomes one U+FFFD (Go's utf8.DecodeRune gives width 1 for
 * every invalid or cut-short sequence). Node's decoder replaces a maximal invalid subpart with a
 * single U+FFFD instead (`F0 9F 98` then `t`: one, where Go writes three). Valid text, nearly always,
 * takes Node's native decoder after a native check.
 */
export function decodeUtf8AsGo(bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  // Valid runs copied and U+FFFD written as bytes into one buffer, decoded once: a body of invalid
  // bytes (up to body_limit) costs a pass over it, not a string per byte.
  const out = Buffer.allocUnsafe(bytes.length * 3);
  let length = 0;
  let runStart = 0;
  let i = 0;
  while (i < bytes.length) {
    const width = sequenceWidth(bytes, i);
    if (width > 0) {
      i += width;
      continue;
    }
    if (i > runStart) length += bytes.copy(out, length, runStart, i);
    out[length++] = 0xef;
    out[length++] = 0xbf;
    out[length++] = 0xbd;
    i++;
    runStart = i;
  }
  length += bytes.copy(out, length, runStart, bytes.length);
  return out.toString('utf8', 0, length);
}

const continuation = (b: number | undefined): boolean => b !== undefined && b >= 0x80 && b <= 0xbf;
const within = (b: number | undefined, low: number, high: number): boolean =>
  b !== undefined && b >= low && b <= high;

/** Length of the valid UTF-8 sequence at `i` (RFC 3629: no overlongs, surrogates or > U+10FFFF), or 0. */
function sequenceWidth(bytes: Buffer, i: number): number {
  const first = bytes[i]!;
  if (first < 0x80) return 1;
  if (first < 0xc2) return 0;
  if (first < 0xe0) return continuation(bytes[i + 1]) ? 2 : 0;
  if (first < 0xf0) {
    const low = first === 0xe0 ? 0xa0 : 0x80;
    const high = first === 0xed ? 0x9f : 0xbf;
    return within(bytes[i + 1], low, high) && continuation(bytes[i + 2]) ? 3 : 0;
  }
  if (first < 0xf5) {
    const low = first === 0xf0 ? 0x90 : 0x80;
    const high = first === 0xf4 ? 0x8f : 0xbf;
    return within(bytes[i + 1], low, high) && continuation(bytes[i + 2]) && continuation(bytes[i + 3])
      ? 4
      : 0;
  }
  return 0;
}
