/**
 * The load-test scenarios (loadtest/scenarios.ts) run, briefly, and show what they are for.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSummary, runScenario } from '../../loadtest/scenarios.ts';

const count = (metrics: string[], prefix: string) =>
  metrics
    .filter((m) => m.startsWith(prefix))
    .reduce((n, m) => n + Number(m.slice(m.lastIndexOf(' ') + 1)), 0);

test('steady: every request answered 200', async () => {
  const s = await runScenario('steady', { seconds: 1 });
  assert.ok(s.requests > 50);
  assert.deepEqual(Object.keys(s.statuses), ['200']);
  assert.match(formatSummary(s), /^== steady: .*\nrequests \d+ in/);
});

test('burst: the queue admits up to its cap, the rest get 503 at once', async () => {
  const s = await runScenario('burst', { seconds: 1 });
  assert.ok((s.statuses['200'] ?? 0) > 0 && (s.statuses['503'] ?? 0) > 0, JSON.stringify(s.statuses));
  assert.ok(count(s.metrics, 'sluice_queue_refusals_total{model="m",reason="full"}') > 0);
});

test('streaming: streams relayed, TTFT and chunk gaps measured', async () => {
  const s = await runScenario('streaming', { seconds: 1 });
  assert.ok((s.statuses['200'] ?? 0) > 0);
  assert.ok(count(s.metrics, 'sluice_stream_chunk_gap_seconds_count') >= 19 * (s.statuses['200'] ?? 0));
  // The clients' side: TTFT and chunk gaps reported as numbers in the summary and its JSON.
  assert.ok(s.streams, 'the streaming summary has client-side stream figures');
  const { complete, ttftMs, chunkGapMs } = s.streams;
  assert.ok(complete > 0 && complete <= (s.statuses['200'] ?? 0), JSON.stringify(s.statuses));
  // One TTFT per stream that sent anything, and 20 content chunks + [DONE] give 20 gaps per stream.
  assert.ok(ttftMs.count >= complete, `${ttftMs.count} TTFTs for ${complete} streams`);
  assert.ok(chunkGapMs.count >= 19 * complete, `${chunkGapMs.count} gaps for ${complete} streams`);
  for (const [what, f] of Object.entries({ ttftMs, chunkGapMs })) {
    for (const x of [f.p50, f.p99, f.max]) assert.ok(Number.isFinite(x) && x >= 0, `${what}: ${x}`);
    assert.ok(f.p50 <= f.p99 && f.p99 <= f.max, `${what}: ${JSON.stringify(f)}`);
  }
  const n = String.raw`\d+(?:\.\d+)?`;
  assert.match(
    formatSummary(s),
    new RegExp(`TTFT p50 ${n} p99 ${n} max ${n}; chunk gap p50 ${n} p99 ${n} max ${n} \\(\\d+ gaps\\)`),
  );
  // And the same figures survive the --json output.
  assert.deepEqual(JSON.parse(JSON.stringify(s)).streams, s.streams);
});

test('fault-storm: breakers open, the fallback answers', async () => {
  const s = await runScenario('fault-storm', { seconds: 2 });
  assert.ok((s.statuses['200'] ?? 0) > 0);
  assert.ok(count(s.metrics, 'sluice_fallbacks_total') > 0);
  assert.ok(count(s.metrics, 'sluice_attempt_failures_total') > 0);
});

test('limit-storm: 429s; what is admitted stays within the limit and its burst', async () => {
  const s = await runScenario('limit-storm', { seconds: 1 });
  assert.ok((s.statuses['429'] ?? 0) > 0);
  // 50/s with a burst of 50: at most 50 + 50 x the run's seconds (+1 s of slack for timing).
  assert.ok((s.statuses['200'] ?? 0) <= 50 + 50 * (s.seconds + 1), JSON.stringify(s.statuses));
});

test('a non-loopback target is refused', async () => {
  await assert.rejects(
    runScenario('steady', { seconds: 1, url: 'http://10.1.2.3:8080' }),
    /loopback addresses only/,
  );
});
