/**
 * Deployment selection: pure, randomness injected so tests are deterministic. Weighted random
 * spreads load in proportion to the configured weights without coordination between instances.
 */
export interface Weighted {
  readonly weight: number;
}

export function pickWeighted<T extends Weighted>(items: readonly T[], random: () => number = Math.random): T {
  if (items.length === 1) return items[0]!;
  let total = 0;
  for (const item of items) total += item.weight;
  let point = random() * total;
  for (const item of items) {
    point -= item.weight;
    if (point < 0) return item;
  }
  return items[items.length - 1]!;
}

/**
 * Power of two choices: draw two candidates by weight and keep the one with less load. It follows
 * the weights when deployments are equally busy and steers around a slow or backed-up one without
 * the herding that "always the least loaded" causes when many requests decide at once.
 */
export function pickTwoChoices<T extends Weighted>(
  items: readonly T[],
  load: (item: T) => number,
  random: () => number = Math.random,
): T {
  if (items.length === 1) return items[0]!;
  const first = pickWeighted(items, random);
  const rest = items.filter((item) => item !== first);
  const second = pickWeighted(rest, random);
  return load(second) < load(first) ? second : first;
}
