/**
 * How deeply a JSON text nests, checked on the raw text before it is parsed. A body nested 100,000
 * deep parses fine but makes every recursive walk after it (JSON.stringify for the upstream call,
 * schema checks, token estimates) throw a RangeError; refusing it at the door keeps that request a
 * 400 and keeps it away from everything shared.
 *
 * Cost is per structural character, not per byte: string contents (most of a prompt) are skipped
 * with indexOf, which is native.
 */
export function exceedsJsonDepth(text: string, maxDepth: number): boolean {
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // '"': jump to the closing quote, one not escaped by an odd run of backslashes.
      for (;;) {
        const end = text.indexOf('"', i + 1);
        if (end < 0) return false; // unterminated: the parser will say so
        let backslashes = 0;
        for (let j = end - 1; text.charCodeAt(j) === 0x5c; j--) backslashes++;
        i = end;
        if ((backslashes & 1) === 0) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      // '[' or '{'
      if (++depth > maxDepth) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}
