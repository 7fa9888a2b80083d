// BENCH_DURATION_S, read once for every bench in `npm run bench`. The full run is 10; any other
// value scales each bench's own defaults by BENCH_DURATION_S / 10, so `BENCH_DURATION_S=3` is a
// smoke run of the whole chain and an unset (or 10) value measures exactly what it always did.
// Command-line flags still win over the scaled defaults. The rules (docs/benchmarks.md, "Running
// it"): seconds and request counts scale (at least 1), round counts scale down but never above
// the full run's (at least 1), warm-ups of fixed length stay capped at their full-run value.

const FULL_S = 10;

function durationS(): number {
  const text = process.env.BENCH_DURATION_S;
  if (text === undefined || text === '') return FULL_S;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 1 || n > 60) throw new Error('BENCH_DURATION_S must be a number 1..60');
  return n;
}

/** Measured seconds per run of the core bench (bench/run.ts), default 10. */
export const DURATION_S = durationS();
/** 1 in the full run; 0.3 in the smoke run `BENCH_DURATION_S=3`. */
export const SCALE = DURATION_S / FULL_S;

/** A duration in seconds (or a request count) from its full-run value: scaled, at least 1. */
export function scaled(full: number): number {
  return Math.max(1, Math.round(full * SCALE));
}

/** A round count from its full-run value: scaled down, never up, at least 1. */
export function scaledRounds(full: number): number {
  return Math.max(1, Math.min(full, Math.round(full * SCALE)));
}

/** A warm-up of `full` seconds: scaled down with the run, never longer than in the full run. */
export function scaledWarmup(full: number): number {
  return Math.min(full, scaled(full));
}
