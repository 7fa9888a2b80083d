// Open-loop load at a fixed rate. Request i is due at start + i/rate whatever happened to the
// requests before it, and its latency runs from that intended send time to the last byte of the
// response, so a stall in the target shows up in every request it delays (no coordinated
// omission). Times come from performance.now() (sub-millisecond). The number of requests is
// fixed (rate x (warm-up + duration)), each has a timeout, and the whole run has a deadline.
//
//   node bench/open-loop.ts --url http://127.0.0.1:9100/v1/chat/completions --rate 500 --duration 10
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { type Summary, summarize } from './stats.ts';

export interface OpenLoopOptions {
  /** Full URL of the endpoint. */
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Requests per second. */
  rate: number;
  /** Measured seconds. */
  durationS: number;
  /** Seconds sent at the same rate before the measured part, not recorded. */
  warmupS?: number;
  /** Pool size; must exceed the requests in flight during the worst stall you want measured exactly. */
  connections?: number;
  /** Per-request timeout (headers and body), ms. */
  timeoutMs?: number;
}

export interface OpenLoopResult {
  rate: number;
  durationS: number;
  /** Requests sent, the warm-up included. */
  sent: number;
  /** Measured requests (the warm-up excluded). */
  scheduled: number;
  ok: number;
  non2xx: number;
  errors: number;
  /** Latency from intended send time to the response's last byte, ms (2xx only). */
  latencyMs: Summary;
  /** p99 of each measured second (by intended send time), and their median: a tail figure that one
   * disturbed second (another process, a host hiccup) cannot move on its own. */
  perSecondP99Ms: number[];
  p99MedianSecondMs: number;
  /** How late the generator issued requests compared to their intended time, ms. */
  sendLagMs: Summary;
  /** Most requests in flight at once. */
  maxInFlight: number;
}

export async function openLoop(opts: OpenLoopOptions): Promise<OpenLoopResult> {
  const url = new URL(opts.url);
  const rate = opts.rate;
  const warmupS = opts.warmupS ?? 0;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const interval = 1000 / rate;
  const warm = Math.round(rate * warmupS);
  const total = warm + Math.round(rate * opts.durationS);
  const pool = new Pool(url.origin, {
    connections: opts.connections ?? 256,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const request = {
    path: url.pathname + url.search,
    method: opts.method ?? 'POST',
    headers: opts.headers ?? {},
    body: opts.body ?? null,
  };

  const latency = new Float64Array(total).fill(Number.NaN);
  const lag = new Float64Array(total).fill(Number.NaN);
  let non2xx = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let next = 0;
  let settled = 0;

  const fire = (i: number, intended: number): void => {
    lag[i] = performance.now() - intended;
    if (++inFlight > maxInFlight) maxInFlight = inFlight;
    pool
      .request(request)
      .then(
        async (res) => {
          await res.body.arrayBuffer();
          if (res.statusCode >= 200 && res.statusCode < 300) latency[i] = performance.now() - intended;
          else if (i >= warm) non2xx++;
        },
        () => {}, // counted below: an error is a request with neither a latency nor a status
      )
      .catch(() => {})
      .finally(() => {
        inFlight--;
        settled++;
      });
  };

  const start = performance.now() + 20;
  const deadline = start + (total / rate) * 1000 + timeoutMs + 5_000;
  try {
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        while (next < total && start + next * interval <= now) {
          fire(next, start + next * interval);
          next++;
        }
        if (next < total) {
          setTimeout(tick, Math.max(0, start + next * interval - performance.now()));
        } else if (settled === total || now > deadline) {
          resolve();
        } else {
          setTimeout(tick, 5);
        }
      };
      tick();
    });
  } finally {
    await pool.destroy();
  }

  const measured = latency.subarray(warm).filter((v) => !Number.isNaN(v));
  const perSecondP99Ms: number[] = [];
  for (let from = warm; from + rate / 2 <= total; from += rate) {
    const second = latency.subarray(from, Math.min(total, from + rate)).filter((v) => !Number.isNaN(v));
    if (second.length > 0) perSecondP99Ms.push(summarize(second).p99);
  }
  return {
    rate,
    durationS: opts.durationS,
    sent: next,
    scheduled: total - warm,
    ok: measured.length,
    non2xx,
    // Failed, timed out, or still unanswered at the deadline.
    errors: total - warm - measured.length - non2xx,
    latencyMs: summarize(measured),
    perSecondP99Ms,
    p99MedianSecondMs: summarize(perSecondP99Ms).p50,
    sendLagMs: summarize(lag.subarray(warm).filter((v) => !Number.isNaN(v))),
    maxInFlight,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      rate: { type: 'string', default: '500' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '256' },
      key: { type: 'string', default: 'sk-bench' },
      model: { type: 'string', default: 'bench-model' },
    },
  });
  if (!values.url) {
    process.stderr.write(
      'usage: node bench/open-loop.ts --url URL [--rate 500] [--duration 10] [--warmup 2]\n',
    );
    process.exit(2);
  }
  const result = await openLoop({
    url: values.url,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${values.key}` },
    body: JSON.stringify({ model: values.model, messages: [{ role: 'user', content: 'Hello, benchmark' }] }),
    rate: Number(values.rate),
    durationS: Number(values.duration),
    warmupS: Number(values.warmup),
    connections: Number(values.connections),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
