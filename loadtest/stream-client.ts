// The streaming scenario's load: `connections` workers, each sending streaming chat completions
// back to back for `seconds`, timing every stream from the client's side. autocannon sees a stream
// only as one response, so it cannot give these figures. Per stream: TTFT, from issuing the
// request to the first body chunk holding an SSE `data:` line; the gaps between consecutive
// `data:` events, each timed when the chunk holding it arrives (events that arrive in one TCP read
// show a gap of 0, as a client would see them); the total, to the last byte. Bounded by `seconds`
// plus the per-request timeout; loopback is checked by the caller.
import { Agent, request } from 'undici';
import { type Summary, summarize } from '../bench/stats.ts';

export interface StreamLoadResult {
  seconds: number;
  /** Streams that got a 200 and ended with `data: [DONE]`. */
  complete: number;
  statuses: Record<string, number>;
  errors: number;
  /** Milliseconds, over the raw samples (nearest rank). */
  totalMs: Summary;
  ttftMs: Summary;
  gapMs: Summary;
}

export async function streamLoad(options: {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  seconds: number;
  timeoutS: number;
}): Promise<StreamLoadResult> {
  const agent = new Agent({ connections: options.connections });
  const statuses: Record<string, number> = {};
  const totalMs: number[] = [];
  const ttftMs: number[] = [];
  const gapMs: number[] = [];
  let complete = 0;
  let errors = 0;
  const started = performance.now();
  const end = started + options.seconds * 1000;
  const timeoutMs = options.timeoutS * 1000;

  const one = async () => {
    const t0 = performance.now();
    const res = await request(options.url, {
      method: 'POST',
      headers: options.headers,
      body: options.body,
      dispatcher: agent,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
    if (res.statusCode !== 200) {
      await res.body.dump();
      return;
    }
    let last = -1;
    let done = false;
    // Only whole lines are looked at; a `data:` line split across two reads counts when it ends.
    let tail = '';
    for await (const chunk of res.body) {
      const now = performance.now();
      const lines = (tail + (chunk as Buffer).toString('utf8')).split('\n');
      tail = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('data:')) continue;
        if (last < 0) ttftMs.push(now - t0);
        else gapMs.push(now - last);
        last = now;
        if (line.startsWith('data: [DONE]')) done = true;
      }
    }
    totalMs.push(performance.now() - t0);
    if (done) complete++;
  };

  const worker = async () => {
    while (performance.now() < end) {
      try {
        await one();
      } catch {
        errors++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.connections }, worker));
  } finally {
    await agent.close();
  }
  return {
    seconds: (performance.now() - started) / 1000,
    complete,
    statuses,
    errors,
    totalMs: summarize(totalMs),
    ttftMs: summarize(ttftMs),
    gapMs: summarize(gapMs),
  };
}
