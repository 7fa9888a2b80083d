// Top self-time functions of a V8 .cpuprofile (as written by `node --cpu-prof`), and the same time
// grouped by where the code lives (Sluice's src/, each npm package, node internals, GC, ...).
//
//   node bench/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 30]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  busyMs: number;
  functions: Row[];
  groups: Row[];
}

function location(frame: CallFrame): string {
  if (!frame.url) return '';
  const url = frame.url.replace(/^file:\/\//, '');
  const nm = url.lastIndexOf('/node_modules/');
  const short =
    nm >= 0 ? url.slice(nm + '/node_modules/'.length) : url.replace(/^.*\/(src|bench|loadtest)\//, '$1/');
  return `${short}:${frame.lineNumber + 1}`;
}

/** Where code lives: `src/<dir>`, an npm package name, `node:<module>`, or a V8 pseudo-frame. */
function group(frame: CallFrame): string {
  const url = frame.url;
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 2).join('/')}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const src = /\/src\/(.*)$/.exec(url);
  if (src) return `src/${src[1]!.includes('/') ? src[1]!.split('/')[0] : src[1]}`;
  return url.replace(/^file:\/\//, '');
}

export function summarizeProfile(profile: CpuProfile, top = 30): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const fn = new Map<string, number>();
  const grp = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    total += us;
    if (frame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const loc = location(frame);
    const name = `${frame.functionName || '(anonymous)'}${loc ? ` ${loc}` : ''}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    const g = group(frame);
    grp.set(g, (grp.get(g) ?? 0) + us);
  }
  const busy = total - idle;
  const rows = (m: Map<string, number>, n: number): Row[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: busy > 0 ? us / busy : 0 }));
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    busyMs: busy / 1000,
    functions: rows(fn, top),
    groups: rows(grp, 25),
  };
}

export function summaryMarkdown(s: ProfileSummary): string {
  const pct = (r: Row) => `${(r.share * 100).toFixed(1)}%`;
  const out = [
    `Profile: ${s.totalMs.toFixed(0)} ms sampled, ${s.busyMs.toFixed(0)} ms busy (${s.idleMs.toFixed(0)} ms idle). Shares are of busy time.`,
    '',
    '| self ms | share | function |',
    '|---:|---:|---|',
    ...s.functions.map((r) => `| ${r.selfMs.toFixed(0)} | ${pct(r)} | \`${r.name}\` |`),
    '',
    '| self ms | share | where |',
    '|---:|---:|---|',
    ...s.groups.map((r) => `| ${r.selfMs.toFixed(0)} | ${pct(r)} | ${r.name} |`),
    '',
  ];
  return out.join('\n');
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    options: { top: { type: 'string', default: '30' } },
    allowPositionals: true,
  });
  if (positionals.length === 0) {
    process.stderr.write('usage: node bench/profile-summary.ts FILE.cpuprofile [--top 30]\n');
    process.exit(2);
  }
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    process.stdout.write(`## ${file}\n\n${summaryMarkdown(summarizeProfile(profile, Number(values.top)))}\n`);
  }
}
