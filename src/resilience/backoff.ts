/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * the delay is uniform in [0, min(cap, base * 2^retry)]. Full jitter spreads a herd of clients
 * that failed together, which equal or decorrelated-free backoff does not.
 */
export function fullJitterDelayMs(
  retry: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(retry, 30));
  // Not rounded: whole milliseconds would make identical delays likely in a batch (birthday problem).
  return random() * ceiling;
}
