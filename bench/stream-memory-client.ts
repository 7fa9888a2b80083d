// One load process of bench/stream-memory.ts: opens `count` streaming chat completions at once
// (spread over `rampMs`), each on its own connection from `localAddress`, reads every stream to
// its end, closes its connections and prints one JSON line with the outcome. Run with the job as
// JSON in argv[2]; exits by itself after `deadlineMs` whatever happened.
import { Pool } from 'undici';

const MAX_RETRIES = 3;
/** Failures before any response: the connection was refused, reset or never completed. */
const RETRIABLE = new Set(['ECONNRESET', 'ECONNREFUSED', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

export interface ClientJob {
  url: string;
  headers: Record<string, string>;
  body: string;
  count: number;
  /** Loopback source address of this process's connections (127.0.0.2, ...). */
  localAddress: string;
  rampMs: number;
  /** A stream that has not ended after this long is aborted and counted as bad. */
  streamTimeoutMs: number;
  /** SSE `data:` events a good stream carries (content chunks + final chunk + [DONE]). */
  expectEvents: number;
  /** Hard limit for the whole process. */
  deadlineMs: number;
}

export interface ClientResult {
  ok: number;
  bad: number;
  /** Count per HTTP status, or per error name when no response came. */
  outcomes: Record<string, number>;
  /** Requests sent again after a connection failure before any response. */
  retries: number;
  /** Most streams open at once in this process. */
  peakOpen: number;
  wallMs: number;
}

async function run(job: ClientJob): Promise<ClientResult> {
  const url = new URL(job.url);
  const pool = new Pool(url.origin, {
    connections: job.count,
    pipelining: 1,
    // Past the accept backlog a SYN is retried after 1, 3, 7... s: wait for it rather than fail.
    connect: { localAddress: job.localAddress, timeout: 30_000 },
    headersTimeout: job.streamTimeoutMs,
    bodyTimeout: job.streamTimeoutMs,
  });
  const outcomes: Record<string, number> = {};
  const count = (key: string) => {
    outcomes[key] = (outcomes[key] ?? 0) + 1;
  };
  let ok = 0;
  let open = 0;
  let peakOpen = 0;
  const started = performance.now();

  let retries = 0;
  // A burst of connects overflows the gateway's accept queue now and then (the kernel then resets
  // or drops the connection): such a request never got an answer and is sent again, a few times.
  const requestWithRetries = async (signal: AbortSignal) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await pool.request({
          path: url.pathname,
          method: 'POST',
          headers: job.headers,
          body: job.body,
          signal,
        });
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (attempt > MAX_RETRIES || signal.aborted || !RETRIABLE.has(code)) throw err;
        retries++;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  };

  const one = async (delayMs: number): Promise<void> => {
    await new Promise((r) => setTimeout(r, delayMs));
    open++;
    if (open > peakOpen) peakOpen = open;
    const signal = AbortSignal.timeout(job.streamTimeoutMs);
    try {
      const res = await requestWithRetries(signal);
      if (res.statusCode !== 200) {
        await res.body.dump();
        count(String(res.statusCode));
        return;
      }
      // Count `data:` events across chunk boundaries. The last 5 bytes are carried into the next
      // chunk's scan (so a split marker or `[DONE]` is found), from their second byte (so a
      // `data:` wholly inside them, already counted, is not counted twice).
      let events = 0;
      let done = false;
      let carry = '';
      for await (const chunk of res.body) {
        const text = carry + (chunk as Buffer).toString('latin1');
        const from = carry.length === 5 ? 1 : 0;
        for (let at = text.indexOf('data:', from); at >= 0; at = text.indexOf('data:', at + 5)) events++;
        if (!done && text.includes('[DONE]')) done = true;
        carry = text.slice(-5);
      }
      if (done && events >= job.expectEvents) {
        ok++;
        count('200');
      } else count('200 short');
    } catch (err) {
      const e = err as Error;
      count(`${e.name}: ${e.message}`.slice(0, 80));
    } finally {
      open--;
    }
  };

  try {
    await Promise.all(Array.from({ length: job.count }, (_, i) => one((i * job.rampMs) / job.count)));
  } finally {
    await pool.destroy();
  }
  return { ok, bad: job.count - ok, outcomes, retries, peakOpen, wallMs: performance.now() - started };
}

if (import.meta.main) {
  const job = JSON.parse(process.argv[2] ?? '{}') as ClientJob;
  setTimeout(() => {
    process.stderr.write(`client ${job.localAddress}: deadline of ${job.deadlineMs} ms reached\n`);
    process.exit(3);
  }, job.deadlineMs).unref();
  run(job).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}
