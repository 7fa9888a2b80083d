#!/usr/bin/env node
// Launcher: Sluice runs its TypeScript sources directly (Node's type stripping, unflagged since
// Node.js 22.18). On an older Node, say so plainly instead of failing on the first type annotation.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`sluice: needs Node.js 22.18 or newer (this is ${process.version})\n`);
  process.exit(1);
}
await import('../src/main.ts');
