/**
 * "Did you mean" for a mistyped word: the closest candidate by edit distance
 * (Levenshtein), if any is within `maxDistance` and closer than the word's
 * own length (so `x` does not suggest `oci`). Ties go to the first candidate.
 */
export function closest(word: string, candidates: Iterable<string>, maxDistance = 2): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(maxDistance, word.length - 1) + 1;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const d = editDistance(word, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** ` (did you mean X?)` for a near miss, else ''. */
export function didYouMean(word: string, candidates: Iterable<string>, maxDistance = 2): string {
  const best = closest(word, candidates, maxDistance);
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
