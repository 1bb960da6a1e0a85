/**
 * Go sorts and compares strings by their UTF-8 bytes, which is code-point order; JS's `<` and the
 * default `sort()` use UTF-16 code units. The two orders differ only where one string has a surrogate
 * (a character above U+FFFF) and the other a character in U+E000–U+FFFF at the same position.
 */
const SURROGATE = /[\uD800-\uDFFF]/;

/** Compares in code-point (Go's byte) order: negative, zero or positive. */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (D800–DFFF) move above the rest of the BMP (E000–FFFF), as their code points are.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * Sorts in place in Go's order. The native sort does the work; the comparator only runs again when a
 * string has a surrogate, which Falco's field names and tags almost never do.
 */
export function sortUtf8(list: string[]): string[] {
  list.sort();
  if (list.length > 1 && list.some((s) => SURROGATE.test(s))) list.sort(compareUtf8);
  return list;
}
