/**
 * A loopback port where TCP connects hang, for connect-timeout tests: a listener with a backlog of
 * one that never accepts, whose queue is filled first, so the kernel drops further SYNs. Python
 * holds the socket because Node always accepts; everything stays on 127.0.0.1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

export interface Blackhole {
  readonly port: number;
  close(): Promise<void>;
}

const SCRIPT = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
`;

export async function startBlackhole(): Promise<Blackhole> {
  const child: ChildProcess = spawn('python3', ['-c', SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const port = Number(line);
  // Fill the accept queue: these connect (the kernel completes them), later ones hang.
  const fillers: Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    fillers.push(socket);
  }
  await new Promise((r) => setTimeout(r, 100));
  return {
    port,
    async close() {
      for (const s of fillers) s.destroy();
      child.stdin!.end();
      child.kill();
      await once(child, 'exit');
    },
  };
}
