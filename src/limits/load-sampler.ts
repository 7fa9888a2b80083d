/**
 * Reads this process's load for the worker shedder: the p99 event-loop delay (perf_hooks'
 * histogram, reset every sample) and the event-loop utilisation over each interval. The timer is
 * unref'd: it never keeps the process alive.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { LoadSample } from './worker-shedder.ts';

export function startLoadSampler(
  intervalMs: number,
  onSample: (sample: LoadSample) => void,
): { stop(): void } {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let previous = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, previous).utilization;
    previous = now;
    // The histogram counts the timer's own resolution (10 ms) into every delay; take it out.
    const eventLoopDelayMs = Math.max(0, delay.percentile(99) / 1e6 - 10);
    delay.reset();
    onSample({ eventLoopDelayMs, utilization });
  }, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      delay.disable();
    },
  };
}
