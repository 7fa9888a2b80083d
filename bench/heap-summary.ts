// Summarises a V8 heap snapshot (.heapsnapshot, as v8.writeHeapSnapshot() writes it): objects
// grouped by kind and constructor name, with their count and self size, largest first; and for
// the most numerous constructors, what holds them (the commonest chain of strong retainers). Enough
// to see whether per-request objects (sockets, requests, timers, buffers) outlived their requests:
// a leak of N requests shows up as a group whose count is a multiple of N.
//
//   node bench/heap-summary.ts FILE.heapsnapshot [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface HeapGroup {
  /** V8 node type (object, closure, string, code, hidden, native, ...) and constructor/name. */
  type: string;
  name: string;
  count: number;
  selfBytes: number;
}

export interface RetainerChain {
  group: HeapGroup;
  /** From the group outwards: the edge that holds the level below, and the holders' kind. */
  links: Array<{ edge: string; holder: string; holders: number; held: number }>;
}

export interface HeapSummary {
  nodes: number;
  totalSelfBytes: number;
  bySize: HeapGroup[];
  byCount: HeapGroup[];
  retainers: RetainerChain[];
}

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Types whose names are contents (string values, code), grouped under the type alone. */
const ANONYMOUS = new Set(['string', 'concatenated string', 'sliced string', 'code', 'number', 'regexp']);
/** Edges that do not keep their target alive, or only say where code came from. */
const WEAK_EDGES = new Set(['weak', 'shortcut']);
/** Levels of retainers followed outwards from a group. */
const CHAIN_DEPTH = 4;

export function summarizeHeap(text: string, top = 25, chains = 6): HeapSummary {
  const snap = JSON.parse(text) as Snapshot;
  const meta = snap.snapshot.meta;
  const types = meta.node_types[0];
  const width = meta.node_fields.length;
  const typeAt = meta.node_fields.indexOf('type');
  const nameAt = meta.node_fields.indexOf('name');
  const sizeAt = meta.node_fields.indexOf('self_size');
  const edgeCountAt = meta.node_fields.indexOf('edge_count');
  const nodes = snap.nodes;
  const count = nodes.length / width;

  const label = (n: number): string => {
    const type = types[nodes[n * width + typeAt]!] ?? '?';
    const name = ANONYMOUS.has(type) ? '' : (snap.strings[nodes[n * width + nameAt]!] ?? '?').slice(0, 80);
    return name ? `${type} ${name}` : type;
  };

  const groups = new Map<string, HeapGroup & { members: number[] }>();
  let total = 0;
  for (let n = 0; n < count; n++) {
    const type = types[nodes[n * width + typeAt]!] ?? '?';
    const name = ANONYMOUS.has(type) ? '' : (snap.strings[nodes[n * width + nameAt]!] ?? '?').slice(0, 80);
    const self = nodes[n * width + sizeAt]!;
    total += self;
    const key = `${type}\u0000${name}`;
    let g = groups.get(key);
    if (!g) {
      g = { type, name, count: 0, selfBytes: 0, members: [] };
      groups.set(key, g);
    }
    g.count++;
    g.selfBytes += self;
    // Chains are worth following for objects a program made, not V8's own.
    if (type === 'object' && !name.startsWith('system /')) g.members.push(n);
  }
  const all = [...groups.values()];
  const plain = (g: HeapGroup): HeapGroup => ({
    type: g.type,
    name: g.name,
    count: g.count,
    selfBytes: g.selfBytes,
  });

  // Reverse index of strong edges: for each node, who points at it and by which edge name.
  const edgeWidth = meta.edge_fields.length;
  const edgeTypeAt = meta.edge_fields.indexOf('type');
  const edgeNameAt = meta.edge_fields.indexOf('name_or_index');
  const edgeToAt = meta.edge_fields.indexOf('to_node');
  const edgeTypes = meta.edge_types[0];
  const edges = snap.edges;
  const inCount = new Int32Array(count + 1);
  const strong = (e: number) => !WEAK_EDGES.has(edgeTypes[edges[e + edgeTypeAt]!] ?? '');
  for (let e = 0; e < edges.length; e += edgeWidth) {
    if (strong(e)) inCount[edges[e + edgeToAt]! / width + 1]!++;
  }
  for (let n = 0; n < count; n++) inCount[n + 1]! += inCount[n]!;
  const inFrom = new Int32Array(inCount[count]!);
  const inEdge = new Int32Array(inCount[count]!);
  const fill = inCount.slice(0, count);
  for (let n = 0, e = 0; n < count; n++) {
    const end = e + nodes[n * width + edgeCountAt]! * edgeWidth;
    for (; e < end; e += edgeWidth) {
      if (!strong(e)) continue;
      const to = edges[e + edgeToAt]! / width;
      inFrom[fill[to]!] = n;
      inEdge[fill[to]!] = e;
      fill[to]!++;
    }
  }
  const edgeName = (e: number): string => {
    const type = edgeTypes[edges[e + edgeTypeAt]!];
    const v = edges[e + edgeNameAt]!;
    if (type === 'element' || type === 'hidden') return `[${type}]`;
    const name = snap.strings[v] ?? String(v);
    // Slots of hash tables and arrays are named by their index: one name for all of them.
    return /^\d+$/.test(name) ? '[index]' : name.slice(0, 60);
  };

  const retainers: RetainerChain[] = [];
  for (const g of [...all].filter((x) => x.members.length > 0).sort((a, b) => b.count - a.count)) {
    if (retainers.length >= chains) break;
    const links: RetainerChain['links'] = [];
    let level = g.members;
    // Holders already on the chain are skipped: objects hold each other in cycles (a client and
    // its own listeners), and the way out of a cycle is what says who keeps it alive.
    const seen = new Set<number>(level);
    for (let depth = 0; depth < CHAIN_DEPTH && level.length > 0; depth++) {
      // The commonest (edge, holder kind) among this level's strong retainers.
      const tally = new Map<string, { edge: string; holder: string; from: Set<number>; held: Set<number> }>();
      for (const n of level) {
        for (let i = inCount[n]!; i < inCount[n + 1]!; i++) {
          const from = inFrom[i]!;
          if (seen.has(from)) continue;
          const key = `${edgeName(inEdge[i]!)}\u0000${label(from)}`;
          let t = tally.get(key);
          if (!t) {
            t = { edge: edgeName(inEdge[i]!), holder: label(from), from: new Set(), held: new Set() };
            tally.set(key, t);
          }
          t.from.add(from);
          t.held.add(n);
        }
      }
      let best: { edge: string; holder: string; from: Set<number>; held: Set<number> } | undefined;
      // Most objects held; on a tie, the fewest holders (the container, not a per-object wrapper).
      for (const t of tally.values()) {
        if (
          !best ||
          t.held.size > best.held.size ||
          (t.held.size === best.held.size && t.from.size < best.from.size)
        )
          best = t;
      }
      if (!best) break;
      for (const n of best.from) seen.add(n);
      links.push({ edge: best.edge, holder: best.holder, holders: best.from.size, held: best.held.size });
      level = [...best.from];
    }
    retainers.push({ group: plain(g), links });
  }

  return {
    nodes: count,
    totalSelfBytes: total,
    bySize: [...all]
      .sort((a, b) => b.selfBytes - a.selfBytes)
      .slice(0, top)
      .map(plain),
    byCount: [...all]
      .sort((a, b) => b.count - a.count)
      .slice(0, top)
      .map(plain),
    retainers,
  };
}

export function heapSummaryMarkdown(s: HeapSummary): string {
  const mb = (n: number) => (n / 1048576).toFixed(2);
  const row = (g: HeapGroup) => `| ${g.type} | ${g.name || '-'} | ${g.count} | ${mb(g.selfBytes)} |`;
  const chain = (r: RetainerChain) =>
    `- ${r.group.name} x${r.group.count}: ` +
    r.links.map((l) => `${l.held} held by \`${l.edge}\` of ${l.holders} ${l.holder}`).join(' <- ');
  return [
    `${s.nodes} heap objects, ${mb(s.totalSelfBytes)} MiB self size in all.`,
    '',
    '| type | constructor / name | count | self MiB |',
    '| --- | --- | ---: | ---: |',
    ...s.bySize.map(row),
    '',
    'Most numerous:',
    '',
    '| type | constructor / name | count | self MiB |',
    '| --- | --- | ---: | ---: |',
    ...s.byCount.map(row),
    '',
    'What holds the most numerous objects (commonest chain of strong retainers, outwards):',
    '',
    ...s.retainers.map(chain),
  ].join('\n');
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    options: { top: { type: 'string', default: '25' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    process.stderr.write('usage: node bench/heap-summary.ts FILE.heapsnapshot [--top 25]\n');
    process.exit(2);
  }
  const summary = summarizeHeap(readFileSync(positionals[0]!, 'utf8'), Number(values.top));
  process.stdout.write(`${heapSummaryMarkdown(summary)}\n`);
}
