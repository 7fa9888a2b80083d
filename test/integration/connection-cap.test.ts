/**
 * The per-address connection cap: one client address at its cap has further connections refused
 * at once (503 too_many_connections, closed), counted and logged without a line per socket,
 * while other addresses (127.0.0.2, ...) connect as usual; trusted proxies are not capped.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { baseConfig, type Harness, startHarness } from '../helpers/harness.ts';
import { agentFrom, dribble, idleConnection, metricValue, parseResponse } from '../helpers/raw-http.ts';

const CAP = 3;

describe('connections per client address', () => {
  let h: Harness;
  let port: number;
  const open: Socket[] = [];
  before(async () => {
    h = await startHarness({
      config: (fake) => ({
        ...baseConfig(fake),
        server: { maxConnectionsPerAddress: CAP, trustedProxies: ['127.0.0.9'] },
      }),
    });
    port = Number(new URL(h.url).port);
  });
  after(async () => {
    for (const socket of open) socket.destroy();
    await h.close();
  });

  it('refuses connections over the cap from one address with 503, and no other address notices', async () => {
    for (let i = 0; i < CAP; i++) open.push(await idleConnection(port, '127.0.0.5'));
    const refusedBefore = await metricValue(h.url, 'sluice_connections_refused_total');

    const refused = await dribble(port, [], 0, { localAddress: '127.0.0.5', graceMs: 5_000 });
    assert.ok(refused.closedByServer, 'closed at once');
    const res = parseResponse(refused.data);
    assert.equal(res.status, 503);
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.headers['retry-after'], '1');
    assert.equal(res.headers['x-should-retry'], 'true');
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'too_many_connections');

    // Another loopback address gets its answers as usual, up to its own cap at once.
    const other = agentFrom('127.0.0.6');
    try {
      const answers = await Promise.all(
        Array.from({ length: CAP }, () =>
          request(`${h.url}/v1/chat/completions`, {
            method: 'POST',
            headers: h.headers(),
            body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'x' }] }),
            dispatcher: other,
          }).then(async (r) => {
            await r.body.dump();
            return r.statusCode;
          }),
        ),
      );
      assert.deepEqual(answers, Array(CAP).fill(200));
    } finally {
      await other.close();
    }
    assert.equal((await metricValue(h.url, 'sluice_connections_refused_total')) - refusedBefore, 1);
  });

  it('logs refusals without a line per socket', async () => {
    const linesBefore = h.logs.filter((l) => String(l.msg).startsWith('connection refused')).length;
    for (let i = 0; i < 20; i++) {
      const refused = await dribble(port, [], 0, { localAddress: '127.0.0.5', graceMs: 5_000 });
      assert.equal(parseResponse(refused.data).status, 503);
    }
    const lines = h.logs.filter((l) => String(l.msg).startsWith('connection refused'));
    assert.ok(lines.length - linesBefore <= 1, `${lines.length - linesBefore} lines for 20 refusals`);
    assert.equal(lines[0]!.level, 'warn');
    assert.equal(lines[0]!.address, '127.0.0.5');
  });

  it('frees a slot when a connection closes', async () => {
    open.pop()!.destroy();
    let socket: Socket | undefined;
    // The close reaches the gateway a moment after destroy() here: retry briefly, bounded.
    for (let attempt = 0; attempt < 50 && socket === undefined; attempt++) {
      socket = await idleConnection(port, '127.0.0.5').catch(() => undefined);
      if (socket === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(socket, 'a new connection from the address is accepted once one closed');
    open.push(socket);
  });

  it('does not cap a trusted proxy: its connections carry many clients', async () => {
    for (let i = 0; i < CAP + 2; i++) open.push(await idleConnection(port, '127.0.0.9'));
  });
});
