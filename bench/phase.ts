// One measured phase in a fresh load-generator process pinned to a core: the orchestrator calls
// runPhase(job, core), which runs `taskset -c <core> node bench/phase.ts` with the job as JSON on
// stdin and reads the result as JSON from stdout.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  type Job,
  measureOpenLoop,
  measureRps,
  measureStreams,
  type OpenLoopJob,
  type OpenLoopMeasure,
  type RpsJob,
  type RpsPhase,
  type StreamsJob,
  type StreamsMeasure,
} from './measure.ts';
import { track } from './procs.ts';

const SELF = fileURLToPath(import.meta.url);

export function runPhase(job: StreamsJob, core: number, timeoutMs: number): Promise<StreamsMeasure>;
export function runPhase(job: RpsJob, core: number, timeoutMs: number): Promise<RpsPhase>;
export function runPhase(job: OpenLoopJob, core: number, timeoutMs: number): Promise<OpenLoopMeasure>;
export function runPhase(job: Job, core: number, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', String(core), process.execPath, SELF], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    const untrack = track(child);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err = (err + d).slice(-4096);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      untrack();
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      untrack();
      if (code !== 0) {
        reject(new Error(`${job.kind} phase exited with ${code ?? signal}: ${err}`));
        return;
      }
      try {
        resolve(JSON.parse(out));
      } catch (e) {
        reject(
          new Error(`${job.kind} phase: bad output (${(e as Error).message}): ${out.slice(0, 200)} ${err}`),
        );
      }
    });
    child.stdin.end(JSON.stringify(job));
  });
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Job;
  let result: unknown;
  if (job.kind === 'streams') result = await measureStreams(job);
  else if (job.kind === 'rps') result = await measureRps(job);
  else result = await measureOpenLoop(job);
  // JSON has no NaN: write it as null, and let the reader treat null as "no figure".
  process.stdout.write(JSON.stringify(result));
}

if (import.meta.main) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
