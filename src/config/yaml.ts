/**
 * Config text to plain data, in time linear in the text's size. `yaml`'s own duplicate-key check
 * (`uniqueKeys: true`) compares every key with all the earlier keys of its map, so a map of
 * 10,000 tenants cost 50 million comparisons (3 s of the 3.7 s a reload stalled for). Here it is
 * off, and each map's keys go into a Map instead: a key written twice is still refused, naming
 * the key's config path and both lines.
 */
import {
  type Document,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  YAMLParseError,
} from 'yaml';
import { ConfigError } from './load-error.ts';
import { joinPath } from './path.ts';

/** Aliases a document may expand; bounds what a small file can blow up into ("billion laughs"). */
const MAX_ALIAS_COUNT = 100;

export function parseYaml(text: string): unknown {
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: false, lineCounter: lines });
  const error = doc.errors[0];
  if (error) throw fromYamlError(error);
  for (const warning of doc.warnings) process.emitWarning(warning);
  checkDuplicateKeys(doc, lines);
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // Too many alias expansions (or an alias cycle) surface here, not as a parse error.
    if (err instanceof YAMLParseError || err instanceof ReferenceError) {
      throw new ConfigError('', `invalid YAML: ${(err as Error).message}`);
    }
    throw err;
  }
}

function fromYamlError(err: YAMLParseError): ConfigError {
  const pos = err.linePos?.[0];
  return new ConfigError(
    '',
    `invalid YAML${pos ? ` at line ${pos.line}, column ${pos.col}` : ''}: ${err.code}`,
  );
}

/**
 * Refuses a mapping key given twice. Keys are compared as the property names they become (`1`
 * and `"1"` are the same key of the parsed object, so they clash), aliases as the key they point
 * to. Collection keys are left to the schema, which refuses them as names.
 */
function checkDuplicateKeys(doc: Document, lines: LineCounter): void {
  // The path is kept as segments and joined only for an error: no string per node.
  const path: Array<string | number> = [];
  // Anchors in document order, so an alias finds the latest one before it without the document
  // walk Alias.resolve() does for each call.
  const anchors = new Map<string, unknown>();
  const keyName = (key: unknown): string | undefined => {
    const node = isAlias(key) ? anchors.get(key.source) : key;
    if (!isScalar(node)) return undefined;
    // As `yaml` names the property: null becomes '', everything else its String().
    return node.value === null ? '' : String(node.value);
  };
  const visit = (node: unknown): void => {
    if (isNode(node) && node.anchor) anchors.set(node.anchor, node);
    if (isMap(node)) {
      const seen = new Map<string, Node>();
      for (const pair of node.items) {
        if (isNode(pair.key) && pair.key.anchor) anchors.set(pair.key.anchor, pair.key);
        const key = keyName(pair.key);
        if (key !== undefined) {
          const first = seen.get(key);
          if (first !== undefined) throw duplicate([...path, key], pair.key as Node, first, lines);
          seen.set(key, pair.key as Node);
        }
        path.push(key ?? '?');
        visit(pair.value);
        path.pop();
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) {
        path.push(i);
        visit(node.items[i]);
        path.pop();
      }
    }
    // Scalars have no keys; an alias's target was checked where it is defined.
  };
  visit(doc.contents);
}

function duplicate(path: Array<string | number>, key: Node, first: Node, lines: LineCounter): ConfigError {
  const at = path.reduce<string>(
    (acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : joinPath(acc, seg)),
    '',
  );
  const here = key.range ? lines.linePos(key.range[0]) : undefined;
  const there = first.range ? lines.linePos(first.range[0]) : undefined;
  return new ConfigError(
    at,
    `duplicate key${here ? ` at line ${here.line}, column ${here.col}` : ''}${there ? ` (first at line ${there.line})` : ''}`,
  );
}
