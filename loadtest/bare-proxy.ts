// The floor any Node gateway stands on: node:http in, one keep-alive undici Pool out, bodies
// streamed both ways, nothing else (no auth, routing, validation, logging or metrics).
//   node loadtest/bare-proxy.ts --port 9300 --upstream http://127.0.0.1:9100
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9300' },
    upstream: { type: 'string', default: 'http://127.0.0.1:9100' },
  },
});
const pool = new Pool(values.upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 4_000 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host']); // hop-by-hop
const strip = (h: Record<string, string | string[] | undefined>) => {
  const out: Record<string, string | string[]> = {};
  for (const k in h) if (!HOP.has(k) && h[k] !== undefined) out[k] = h[k];
  return out;
};

const server = createServer((req, res) => {
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pool.stream(
    {
      path: req.url ?? '/',
      method: req.method as 'POST',
      headers: strip(req.headers),
      body: hasBody ? req : null,
    },
    ({ statusCode, headers }) => res.writeHead(statusCode, strip(headers)),
    (err) => {
      if (!err) return;
      if (!res.headersSent)
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`bad gateway: ${err.message}`);
      else res.destroy(err);
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1', () =>
  process.stdout.write(`bare proxy on http://127.0.0.1:${values.port}\n`),
);
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.closeAllConnections();
    process.exit(0);
  });
}
