// The cost of the request-body nesting check (src/server/json-depth.ts) next to JSON.parse of the same
// text: `node bench/json-depth.ts`. Two bodies: the core bench's and a 46 KB agent-style chat body.
import { exceedsJsonDepth } from '../src/server/json-depth.ts';

const small = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Hello, benchmark' }] });
const chat = JSON.stringify({
  model: 'm',
  messages: Array.from({ length: 40 }, (_, i) => ({
    role: i % 2 ? 'assistant' : 'user',
    content: 'lorem ipsum dolor sit amet '.repeat(40),
  })),
  tools: Array.from({ length: 10 }, () => ({
    type: 'function',
    function: {
      name: 'f',
      parameters: {
        type: 'object',
        properties: { a: { type: 'string' }, b: { type: 'array', items: { type: 'number' } } },
      },
    },
  })),
});
for (const [name, text] of [
  ['small', small],
  ['chat ~45KB', chat],
] as const) {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) {
    exceedsJsonDepth(text, 128);
    n++;
  }
  const us = (1000 * 1000) / n;
  let m = 0;
  const t1 = performance.now();
  while (performance.now() - t1 < 1000) {
    JSON.parse(text);
    m++;
  }
  console.log(
    name,
    text.length,
    'bytes: depth scan',
    us.toFixed(2),
    'µs; JSON.parse',
    ((1000 * 1000) / m).toFixed(2),
    'µs',
  );
}
