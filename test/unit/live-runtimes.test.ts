/** Which config snapshots are still in use, across swaps, swaps back, and the last request ending. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LiveRuntimes } from '../../src/live-runtimes.ts';
import type { Runtime } from '../../src/runtime.ts';

const snapshot = (name: string) => ({ name }) as unknown as Runtime;

describe('LiveRuntimes', () => {
  it('keeps a retired snapshot until its last request ends, then says so once', () => {
    const a = snapshot('a');
    const b = snapshot('b');
    const events: string[] = [];
    const live = new LiveRuntimes(a, (why) => events.push(why));
    const r1 = live.acquire();
    const r2 = live.acquire();
    live.swap(b);
    assert.equal(live.current, b);
    assert.deepEqual([...live.retired()], [a]);
    live.release(r1);
    assert.deepEqual([...live.retired()], [a]);
    live.release(r2);
    assert.deepEqual([...live.retired()], []);
    assert.deepEqual(events, ['swap', 'retired']);
  });

  it('an unused snapshot is not kept; a snapshot swapped back in takes its count along', () => {
    const a = snapshot('a');
    const b = snapshot('b');
    const live = new LiveRuntimes(a, () => {});
    live.swap(b); // nothing ran on a
    assert.deepEqual([...live.retired()], []);
    const onB = live.acquire();
    live.swap(a);
    assert.deepEqual([...live.retired()], [b]);
    live.swap(b); // back: its request counts as current again
    assert.deepEqual([...live.retired()], []);
    live.release(onB);
    live.swap(a);
    assert.deepEqual([...live.retired()], [], 'b has nothing running');
  });
});
