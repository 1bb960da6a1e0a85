/** Edit distance counting a swap of neighbours as one edit (`prot` → `port`), as typos usually are. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate the user most likely meant: one that starts with what they typed (`warn` → `warning`), or
 * one within a couple of typos (`alerts` → `alert`, `prot` → `port`). Case-insensitive.
 */
export function closest(input: string, candidates: Iterable<string>): string | undefined {
  const typed = input.toLowerCase();
  const list = [...candidates];
  if (typed.length >= 3) {
    const prefixed = list.find((c) => c.toLowerCase().startsWith(typed));
    if (prefixed !== undefined) return prefixed;
  }
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(typed.length / 3));
  for (const candidate of list) {
    const d = distance(typed, candidate.toLowerCase());
    if (d <= bestDistance && (best === undefined || d < bestDistance)) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** `; did you mean "port"?` or ''. */
export function didYouMean(input: string, candidates: Iterable<string>): string {
  const guess = closest(input, candidates);
  return guess === undefined ? '' : `; did you mean "${guess}"?`;
}
