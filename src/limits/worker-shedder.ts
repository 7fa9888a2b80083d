/**
 * Layer 1, the worker utilization load shedder (after Stripe): when this process's event loop is
 * saturated, refuse requests by priority class, lowest first, before they cost anything more.
 * Pure policy: it is fed load samples (load-sampler.ts reads them) and keeps no clock.
 *
 * The rule, with hysteresis so it neither flaps on nor off:
 * - A sample is *overloaded* when its p99 event-loop delay is above `maxEventLoopDelayMs` or its
 *   utilisation above `maxUtilization`; *calm* when both are below `recoverRatio` times their
 *   threshold; anything in between is the band, and changes nothing (and breaks both streaks).
 * - After `escalateAfterSamples` overloaded samples in a row, one more class is shed: level 1
 *   sheds batch, 2 batch and standard, 3 everything (critical last). The streak then restarts, so
 *   a sustained overload climbs one class per `escalateAfterSamples` samples.
 * - After `recoverAfterSamples` calm samples in a row, one class fewer is shed, one step at a time.
 */
import type { Priority } from '../config/defaults.ts';

export interface WorkerShedderSettings {
  readonly maxEventLoopDelayMs: number;
  readonly maxUtilization: number;
  readonly escalateAfterSamples: number;
  readonly recoverAfterSamples: number;
  readonly recoverRatio: number;
}

export interface LoadSample {
  /** p99 event-loop delay over the sample window, in ms. */
  readonly eventLoopDelayMs: number;
  /** Share of the window the event loop was busy, 0 to 1. */
  readonly utilization: number;
}

export const MAX_SHED_LEVEL = 3;
/** The lowest level at which each class is refused. */
const REFUSED_FROM: Readonly<Record<Priority, number>> = { batch: 1, standard: 2, critical: 3 };

export class WorkerShedder {
  #settings: WorkerShedderSettings;
  #level = 0;
  #over = 0;
  #calm = 0;
  #last: LoadSample | undefined;

  constructor(settings: WorkerShedderSettings) {
    this.#settings = settings;
  }

  get level(): number {
    return this.#level;
  }

  get lastSample(): LoadSample | undefined {
    return this.#last;
  }

  /** Feeds one sample; returns the level after it. */
  observe(sample: LoadSample): number {
    this.#last = sample;
    const s = this.#settings;
    const overloaded =
      sample.eventLoopDelayMs > s.maxEventLoopDelayMs || sample.utilization > s.maxUtilization;
    const calm =
      sample.eventLoopDelayMs < s.maxEventLoopDelayMs * s.recoverRatio &&
      sample.utilization < s.maxUtilization * s.recoverRatio;
    if (overloaded) {
      this.#calm = 0;
      if (++this.#over >= s.escalateAfterSamples) {
        this.#over = 0;
        this.#level = Math.min(MAX_SHED_LEVEL, this.#level + 1);
      }
    } else if (calm) {
      this.#over = 0;
      if (++this.#calm >= s.recoverAfterSamples) {
        this.#calm = 0;
        this.#level = Math.max(0, this.#level - 1);
      }
    } else {
      this.#over = 0;
      this.#calm = 0;
    }
    return this.#level;
  }

  admits(priority: Priority): boolean {
    return this.#level < REFUSED_FROM[priority];
  }

  /** New settings on reload; the level and streaks carry over. */
  configure(settings: WorkerShedderSettings): void {
    this.#settings = settings;
  }

  /** Back to shedding nothing (the shedder was switched off). */
  reset(): void {
    this.#level = 0;
    this.#over = 0;
    this.#calm = 0;
  }
}
