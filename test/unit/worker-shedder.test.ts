import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startLoadSampler } from '../../src/limits/load-sampler.ts';
import { type LoadSample, WorkerShedder } from '../../src/limits/worker-shedder.ts';

const settings = {
  maxEventLoopDelayMs: 100,
  maxUtilization: 0.9,
  escalateAfterSamples: 3,
  recoverAfterSamples: 4,
  recoverRatio: 0.5,
};
const OVER: LoadSample = { eventLoopDelayMs: 150, utilization: 0.5 };
const CALM: LoadSample = { eventLoopDelayMs: 10, utilization: 0.1 };
const BAND: LoadSample = { eventLoopDelayMs: 80, utilization: 0.1 };
const feed = (s: WorkerShedder, sample: LoadSample, n: number) => {
  for (let i = 0; i < n; i++) s.observe(sample);
  return s.level;
};

test('starts shedding nothing and climbs one class per sustained overload, up to everything', () => {
  const s = new WorkerShedder(settings);
  assert.equal(s.level, 0);
  assert.ok(s.admits('batch') && s.admits('standard') && s.admits('critical'));
  assert.equal(feed(s, OVER, 2), 0, 'not before escalateAfterSamples');
  assert.equal(feed(s, OVER, 1), 1);
  assert.equal(s.admits('batch'), false);
  assert.ok(s.admits('standard') && s.admits('critical'));
  assert.equal(feed(s, OVER, 3), 2);
  assert.equal(s.admits('standard'), false);
  assert.ok(s.admits('critical'));
  assert.equal(feed(s, OVER, 3), 3);
  assert.equal(s.admits('critical'), false);
  assert.equal(feed(s, OVER, 30), 3, 'never beyond 3');
});

test('utilisation alone is overload too', () => {
  const s = new WorkerShedder(settings);
  assert.equal(feed(s, { eventLoopDelayMs: 0, utilization: 0.95 }, 3), 1);
});

test('hysteresis: samples between calm and overloaded change nothing and break streaks', () => {
  const s = new WorkerShedder(settings);
  for (let i = 0; i < 20; i++) {
    s.observe(OVER);
    s.observe(OVER);
    s.observe(BAND); // a signal hovering around the threshold never escalates
  }
  assert.equal(s.level, 0);
  feed(s, OVER, 3);
  assert.equal(s.level, 1);
  for (let i = 0; i < 20; i++) {
    feed(s, CALM, 3);
    s.observe(BAND); // nor recovers without a full calm streak
  }
  assert.equal(s.level, 1);
});

test('recovery steps down one class per recoverAfterSamples calm samples', () => {
  const s = new WorkerShedder(settings);
  feed(s, OVER, 9);
  assert.equal(s.level, 3);
  assert.equal(feed(s, CALM, 3), 3);
  assert.equal(feed(s, CALM, 1), 2);
  assert.equal(feed(s, CALM, 4), 1);
  assert.equal(feed(s, CALM, 4), 0);
  assert.equal(feed(s, CALM, 40), 0);
  assert.deepEqual(s.lastSample, CALM);
});

test('an overloaded sample resets the calm streak and the other way round', () => {
  const s = new WorkerShedder(settings);
  feed(s, OVER, 3);
  feed(s, CALM, 3);
  s.observe(OVER);
  assert.equal(feed(s, CALM, 3), 1, 'the calm streak restarted');
  assert.equal(feed(s, CALM, 1), 0);
});

test('configure keeps the level; reset sheds nothing', () => {
  const s = new WorkerShedder(settings);
  feed(s, OVER, 6);
  s.configure({ ...settings, escalateAfterSamples: 1 });
  assert.equal(s.level, 2);
  assert.equal(s.observe(OVER), 3);
  s.reset();
  assert.equal(s.level, 0);
  assert.ok(s.admits('batch'));
});

test('the load sampler sees a blocked event loop, and stops', async () => {
  const samples: LoadSample[] = [];
  const sampler = startLoadSampler(50, (s) => samples.push(s));
  await new Promise((r) => setTimeout(r, 120));
  const end = performance.now() + 300;
  while (performance.now() < end) {
    // block the event loop on purpose
  }
  await new Promise((r) => setTimeout(r, 150));
  sampler.stop();
  const seen = samples.length;
  assert.ok(
    samples.some((s) => s.eventLoopDelayMs >= 200 && s.utilization > 0.5),
    JSON.stringify(samples),
  );
  assert.ok(
    samples.slice(0, 2).every((s) => s.eventLoopDelayMs < 50),
    'idle samples are near zero',
  );
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(samples.length, seen, 'no samples after stop');
});
