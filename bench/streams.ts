// Concurrent SSE streams: `concurrency` workers, each running `warmupRounds + rounds` streaming
// chat completions back to back. Worker k starts k * staggerMs / concurrency ms late, so the
// streams arrive spread out rather than as one burst and about `concurrency` are open at any time.
// Per stream: time to first token (first chunk holding an SSE `data:` line) and completion time
// (last byte), both from the moment the request is issued, via performance.now().
import { Pool } from 'undici';
import { type Summary, summarize } from './stats.ts';

export interface StreamOptions {
  url: string;
  headers?: Record<string, string>;
  body: string;
  concurrency: number;
  rounds: number;
  warmupRounds?: number;
  /** Spread of the first streams' start times, ms (about one stream's duration). */
  staggerMs?: number;
  /** Data events a good stream carries (content chunks + [DONE]); fewer counts as bad. */
  expectEvents: number;
  /** Per stream, ms (the whole stream). */
  timeoutMs?: number;
}

export interface StreamResult {
  streams: number;
  ok: number;
  /** Non-200, error, or a stream without [DONE] or with too few events. */
  bad: number;
  ttftMs: Summary;
  totalMs: Summary;
  /** Wall time of the measured rounds, s. */
  wallS: number;
}

export async function runStreams(opts: StreamOptions): Promise<StreamResult> {
  const url = new URL(opts.url);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const warmupRounds = opts.warmupRounds ?? 1;
  const pool = new Pool(url.origin, {
    connections: opts.concurrency + 16,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const request = {
    path: url.pathname + url.search,
    method: 'POST' as const,
    headers: opts.headers ?? {},
    body: opts.body,
  };
  const ttft: number[] = [];
  const total: number[] = [];
  let bad = 0;
  let measuredStart = Number.POSITIVE_INFINITY;
  let measuredEnd = 0;

  const one = async (record: boolean): Promise<void> => {
    const t0 = performance.now();
    if (record && t0 < measuredStart) measuredStart = t0;
    let first = Number.NaN;
    let text = '';
    try {
      const res = await pool.request({ ...request, signal: AbortSignal.timeout(timeoutMs) });
      if (res.statusCode !== 200) {
        await res.body.dump();
        if (record) bad++;
        return;
      }
      for await (const chunk of res.body) {
        text += (chunk as Buffer).toString('utf8');
        if (Number.isNaN(first) && text.includes('data:')) first = performance.now() - t0;
      }
    } catch {
      if (record) bad++;
      return;
    }
    const end = performance.now();
    if (!record) return;
    if (end > measuredEnd) measuredEnd = end;
    let events = 0;
    for (let at = text.indexOf('data:'); at >= 0; at = text.indexOf('data:', at + 5)) events++;
    if (events < opts.expectEvents || !text.includes('data: [DONE]') || Number.isNaN(first)) {
      bad++;
      return;
    }
    ttft.push(first);
    total.push(end - t0);
  };

  const stagger = (opts.staggerMs ?? 200) / opts.concurrency;
  const worker = async (k: number): Promise<void> => {
    await new Promise((r) => setTimeout(r, k * stagger));
    for (let round = 0; round < warmupRounds + opts.rounds; round++) await one(round >= warmupRounds);
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, (_, k) => worker(k)));
  } finally {
    await pool.destroy();
  }
  return {
    streams: opts.concurrency * opts.rounds,
    ok: ttft.length,
    bad,
    ttftMs: summarize(ttft),
    totalMs: summarize(total),
    wallS: (measuredEnd - measuredStart) / 1000,
  };
}
