/**
 * "Did you mean": the known name closest to a mistyped one, for config errors. Optimal string
 * alignment distance (insert, delete, substitute, swap two neighbours), case-insensitive; a
 * candidate counts only when it is within 2 edits (1 for names of up to 4 characters, where 2
 * edits turn any name into many others).
 */
export function closestName(typed: string, candidates: Iterable<string>): string | undefined {
  const limit = typed.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = limit + 1;
  const a = typed.toLowerCase();
  for (const candidate of candidates) {
    if (candidate === typed) continue;
    const d = distance(a, candidate.toLowerCase(), bestDistance);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Edit distance, or `cap` as soon as it cannot be below it. Config keys are short: O(n*m) is fine. */
function distance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, prev2[j - 2]! + 1);
      row.push(d);
      if (d < rowMin) rowMin = d;
    }
    if (rowMin >= cap) return cap;
    prev2 = prev;
    prev = row;
  }
  return Math.min(prev[b.length]!, cap);
}
