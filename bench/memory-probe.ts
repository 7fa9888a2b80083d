// A preload for the gateway under bench/stream-memory.ts: `node --expose-gc --import
// ./bench/memory-probe.ts src/main.ts ...`, spawned with an IPC channel. It answers the bench's
// questions from inside the process without any change to Sluice: memory figures on request, a
// full GC, a memory-reducing GC (what V8 does on a low-memory notification), a heap snapshot, and (when the bench built bench/malloc-probe.c and passed its path in
// SLUICE_MALLOC_PROBE) what glibc's allocator holds and malloc_trim(0). Only bench code loads it.
import { createRequire } from 'node:module';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';

export type ProbeOp = 'sample' | 'gc' | 'gc-reduce' | 'trim' | 'snapshot';

export interface ProbeRequest {
  id: number;
  op: ProbeOp;
  /** For 'snapshot': the file to write. */
  path?: string;
}

export interface MallocFigures {
  /** Bytes glibc got from the kernel for its arenas (not counting mmapped chunks). */
  arena: number;
  /** Bytes in mmapped chunks (large allocations, returned to the kernel on free). */
  hblkhd: number;
  /** Bytes in use inside the arenas. */
  uordblks: number;
  /** Bytes free inside the arenas: held by glibc, resident unless trimmed or never touched. */
  fordblks: number;
  /** Arenas (one <heap> each in malloc_info). */
  arenas: number;
}

export interface ProbeSample {
  id: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Bytes V8 itself holds from malloc (compiler zones, tables), outside the heap spaces. */
  v8Malloced: number;
  /** V8 heap spaces, committed (physical) bytes, by space name. */
  spaces: Record<string, { size: number; used: number; physical: number }>;
  malloc?: MallocFigures;
  /** For 'trim': malloc_trim's result (1 when memory was released). */
  trimmed?: number;
  /** For 'snapshot': the file written and how long writing it took. */
  snapshot?: string;
  tookMs: number;
  error?: string;
}

interface MallocProbe {
  mallinfo(): { arena: number; hblkhd: number; uordblks: number; fordblks: number };
  info(): string;
  trim(): number;
}

const addonPath = process.env.SLUICE_MALLOC_PROBE;
const malloc: MallocProbe | undefined = addonPath
  ? (createRequire(import.meta.url)(addonPath) as MallocProbe)
  : undefined;
/** V8's gc extension (--expose-gc): `flavor: 'last-resort'` is CollectAllAvailableGarbage. */
const gc = (globalThis as { gc?: (options?: Record<string, string>) => void }).gc;

function mallocFigures(): MallocFigures | undefined {
  if (!malloc) return undefined;
  const m = malloc.mallinfo();
  const arenas = malloc.info().match(/<heap nr=/g)?.length ?? 0;
  return { arena: m.arena, hblkhd: m.hblkhd, uordblks: m.uordblks, fordblks: m.fordblks, arenas };
}

function sample(id: number, started: number): ProbeSample {
  const mem = process.memoryUsage();
  const spaces: ProbeSample['spaces'] = {};
  for (const s of getHeapSpaceStatistics()) {
    spaces[s.space_name] = { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size };
  }
  return {
    id,
    rss: mem.rss,
    heapTotal: mem.heapTotal,
    heapUsed: mem.heapUsed,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    v8Malloced: getHeapStatistics().malloced_memory,
    spaces,
    malloc: mallocFigures(),
    tookMs: performance.now() - started,
  };
}

function handle(req: ProbeRequest): ProbeSample {
  const started = performance.now();
  if (req.op === 'gc' || req.op === 'gc-reduce') {
    if (!gc) throw new Error('start node with --expose-gc');
    if (req.op === 'gc') {
      // Twice: the first full GC can leave objects whose finalizers free more on the second.
      gc();
      gc();
    } else {
      // The GC V8 runs on a low-memory notification: several rounds, shrinking new space and
      // releasing pooled pages (memory-reducing), as the memory reducer would when idle.
      gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    }
  }
  let trimmed: number | undefined;
  if (req.op === 'trim') {
    if (!malloc) throw new Error('no malloc probe (SLUICE_MALLOC_PROBE)');
    trimmed = malloc.trim();
  }
  let snapshot: string | undefined;
  if (req.op === 'snapshot') snapshot = writeHeapSnapshot(req.path);
  return { ...sample(req.id, started), trimmed, snapshot };
}

if (process.send) {
  process.on('message', (msg: ProbeRequest) => {
    let out: ProbeSample | { id: number; error: string };
    try {
      out = handle(msg);
    } catch (err) {
      out = { id: msg.id, error: (err as Error).message };
    }
    process.send?.(out);
  });
  // The channel must not keep the gateway alive on its own.
  process.channel?.unref();
}
