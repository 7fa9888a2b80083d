/**
 * Raw TCP clients for the connection tests: slow writers, hand-made requests, and connections
 * from other loopback source addresses (127.0.0.2, ... are usable on Linux without setup).
 */
import { connect, type Socket } from 'node:net';
import { Agent } from 'undici';

export interface Exchange {
  /** Everything the server sent. */
  readonly data: string;
  /** True when the server closed the connection (or reset it) before the client gave up. */
  readonly closedByServer: boolean;
  /** How many of the chunks were written before the connection closed. */
  readonly sent: number;
}

/**
 * Connects to 127.0.0.1:`port` (from `localAddress` when given), writes `chunks` one every
 * `gapMs` while the connection is open, and collects the answer. Bounded: after the last chunk it
 * waits `graceMs` more, then gives up and closes the connection itself.
 */
export function dribble(
  port: number,
  chunks: readonly string[],
  gapMs: number,
  options: { localAddress?: string; graceMs?: number } = {},
): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: options.localAddress });
    let data = '';
    let sent = 0;
    let givenUp = false;
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      data += d;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data, closedByServer: !givenUp, sent });
    });
    const next = () => {
      if (socket.destroyed) return;
      if (sent >= chunks.length) {
        timer = setTimeout(() => {
          givenUp = true;
          socket.destroy();
        }, options.graceMs ?? 2_000);
        return;
      }
      socket.write(chunks[sent++]!);
      timer = setTimeout(next, gapMs);
    };
    socket.once('connect', next);
  });
}

/** One byte per chunk. */
export const bytes = (text: string): string[] => text.split('');

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** The first HTTP response in `data` (enough for error answers: content-length bodies). */
export function parseResponse(data: string): RawResponse {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no HTTP response in ${JSON.stringify(data.slice(0, 200))}`);
  const [statusLine, ...lines] = data.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? data.length - end - 4);
  return {
    status: Number(statusLine!.split(' ')[1]),
    headers,
    body: data.slice(end + 4, end + 4 + length),
  };
}

/** An open connection that sent one request and got its answer: now idle (keep-alive). */
export async function idleConnection(port: number, localAddress?: string): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  socket.setEncoding('utf8');
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    let data = '';
    socket.once('close', () => reject(new Error(`closed before answering: ${JSON.stringify(data)}`)));
    socket.on('data', function onData(d: string) {
      data += d;
      if (data.includes('\r\n\r\n') && data.endsWith('}')) {
        socket.off('data', onData);
        socket.removeAllListeners('close');
        resolve();
      }
    });
    socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
  });
  return socket;
}

/** An undici dispatcher whose connections come from `localAddress`. */
export function agentFrom(localAddress: string): Agent {
  return new Agent({ localAddress });
}

/** A sample of `name{labels}` from the gateway's /metrics (0 when absent). */
export async function metricValue(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const prefix = labels === '' ? `${name} ` : `${name}{${labels}} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(prefix.length)) : 0;
}
