// Closed-loop throughput with autocannon's programmatic API: `connections` keep-alive connections,
// each sending its next request as soon as the previous answer is in, for a fixed duration.
// `sample()` is called at the start, every second and at the end, next to the count of responses
// so far, so the caller can work out per-second rates (robust to a noisy second or two).
import autocannon from 'autocannon';

export interface RpsOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  durationS: number;
}

export interface RpsSample<S> {
  /** performance.now() */
  t: number;
  /** Responses received so far. */
  responses: number;
  s: S;
}

export interface RpsResult {
  /** Completed requests. */
  requests: number;
  /** autocannon's own measure of the run, s. */
  durationS: number;
  rps: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Closed-loop latency (autocannon's, ms; for information only). */
  latencyP50Ms: number;
  latencyP99Ms: number;
}

export async function runRps<S>(
  opts: RpsOptions,
  sample?: () => S,
): Promise<RpsResult & { samples: Array<RpsSample<S>> }> {
  let responses = 0;
  const samples: Array<RpsSample<S>> = [];
  const take = (): void => {
    if (sample) samples.push({ t: performance.now(), responses, s: sample() });
  };
  const instance = autocannon({
    url: opts.url,
    method: 'POST',
    headers: opts.headers,
    body: opts.body,
    connections: opts.connections,
    pipelining: 1,
    duration: opts.durationS,
    timeout: 10,
  });
  let timer: NodeJS.Timeout | undefined;
  if (sample) {
    instance.on('response', () => {
      responses++;
    });
    take();
    timer = setInterval(take, 1000);
  }
  let r: Awaited<typeof instance>;
  try {
    r = await instance;
  } finally {
    clearInterval(timer);
  }
  take();
  return {
    requests: r.requests.total,
    durationS: r.duration,
    rps: r.requests.total / r.duration,
    ok2xx: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    latencyP50Ms: r.latency.p50,
    latencyP99Ms: r.latency.p99,
    samples,
  };
}
