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
