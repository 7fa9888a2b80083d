/**
 * Config text to plain data, in time linear in the text's size. js-yaml parses the text into a
 * flat list of events (offsets into the text, no node objects) and builds the plain objects from
 * them. With `yaml` (v2) the lexer, parser and document model alone took 1.4-2 s for 10,000
 * tenants (20,000 lines); js-yaml reads them in 0.1-0.3 s.
 *
 * A pass of ours over the events (checkEvents) refuses, when the file has aliases, before the
 * objects are built:
 * - more than MAX_ALIASES aliases, an alias inside the node it names (a cycle, which every later
 *   walk of the tree would follow forever), and aliases that would add more nodes than the file
 *   writes, or than MAX_ALIAS_GROWTH if that is more ("billion laughs": js-yaml does not copy an
 *   aliased node, but interpolation, validation and freezing walk each use of it, so nested
 *   aliases grow their work exponentially);
 * - a mapping key given twice, naming its config path and both lines. Without aliases js-yaml
 *   finds a duplicate itself, with only its line (a 20,000-line file needs the path), and the
 *   pass runs then to name it.
 */
import {
  CORE_SCHEMA,
  constructFromEvents,
  EVENT_ID,
  type Event,
  getScalarValue,
  parseEvents,
  SCALAR_STYLE,
  type ScalarEvent,
  YAMLException,
} from 'js-yaml';
import { ConfigError } from './load-error.ts';
import { joinPath } from './path.ts';

/** At most this many aliases in a document (as `yaml`'s maxAliasCount did before). */
const MAX_ALIASES = 100;
/** Nodes aliases may add to the document beyond what is written, when the file is smaller. */
const MAX_ALIAS_GROWTH = 10_000;

export function parseYaml(text: string): unknown {
  let events: Event[];
  try {
    events = parseEvents(text, {});
  } catch (err) {
    throw fromYamlError(err);
  }
  // An empty file (or only comments) is no document: left to the caller's "must be a mapping".
  if (!events.some((e) => e.type === EVENT_ID.DOCUMENT)) return null;
  // The pass costs ~5% of a load (a Map per mapping, a string per key), so a file without aliases
  // skips it unless js-yaml finds a duplicate key: then the pass finds the key's path.
  const aliased = events.some((e) => e.type === EVENT_ID.ALIAS);
  if (aliased) checkEvents(text, events);
  try {
    const documents = constructFromEvents(events, { source: text, maxAliases: MAX_ALIASES });
    if (documents.length > 1)
      throw new ConfigError('', 'invalid YAML: the file holds more than one document');
    return documents[0] ?? null;
  } catch (err) {
    if (!aliased && err instanceof YAMLException && err.reason === DUPLICATE_KEY) checkEvents(text, events);
    // A duplicate the pass does not see (a tagged key such as `!!str 1`) keeps js-yaml's message.
    throw fromYamlError(err);
  }
}

/** js-yaml's reason for a key given twice in a mapping. */
const DUPLICATE_KEY = 'duplicated mapping key';

function fromYamlError(err: unknown): Error {
  if (!(err instanceof YAMLException)) return err as Error;
  const mark = err.mark;
  return new ConfigError(
    '',
    `invalid YAML${mark ? ` at line ${mark.line + 1}, column ${mark.column + 1}` : ''}: ${err.reason}`,
  );
}

/** An open collection during the pass over the events. */
interface Frame {
  readonly mapping: boolean;
  /** Mapping: key name to the offset where it was written. */
  readonly seen: Map<string, number> | undefined;
  /** Mapping: the current entry's key name ('?' for a collection key); sequence: the index. */
  key: string | number;
  /** Mapping: whether the next event is a key. */
  expectKey: boolean;
  /** Nodes under this one with aliases expanded, itself included. */
  size: number;
  /** The anchor naming this collection, while it is open (an alias of it is a cycle). */
  readonly anchor: Anchor | undefined;
}

interface Anchor {
  /** Nodes the anchored node stands for, aliases under it expanded. */
  size: number;
  open: boolean;
  /** The key name it makes when used as a mapping key; undefined for a collection. */
  keyName: string | undefined;
}

/**
 * Duplicate keys and alias limits (see the file comment), in one pass over the events. The config
 * path is kept as the frames' keys and joined only for an error.
 */
function checkEvents(text: string, events: readonly Event[]): void {
  const frames: Frame[] = [];
  const anchors = new Map<string, Anchor>();
  let written = 0;
  let aliases = 0;
  let rootSize = 0;

  /** Records a finished node of `size` nodes in its parent; `keyName` if it is a scalar. */
  const add = (size: number, keyName: string | undefined, at: number): void => {
    const parent = frames[frames.length - 1];
    if (parent === undefined) {
      rootSize += size;
      return;
    }
    parent.size += size;
    if (!parent.mapping) {
      parent.key = (parent.key as number) + 1;
      return;
    }
    if (parent.expectKey) {
      const name = keyName ?? '?';
      if (keyName !== undefined) {
        const first = parent.seen!.get(name);
        if (first !== undefined) throw duplicate(text, frames, name, at, first);
        parent.seen!.set(name, at);
      }
      parent.key = name;
    }
    parent.expectKey = !parent.expectKey;
  };

  for (const event of events) {
    switch (event.type) {
      case EVENT_ID.SCALAR: {
        written++;
        const parent = frames[frames.length - 1];
        const isKey = parent?.mapping === true && parent.expectKey;
        const anchored = event.anchorStart >= 0;
        const name = isKey || anchored ? keyNameOf(text, event) : undefined;
        if (anchored) {
          anchors.set(text.slice(event.anchorStart, event.anchorEnd), {
            size: 1,
            open: false,
            keyName: name,
          });
        }
        add(1, name, scalarStart(event));
        break;
      }
      case EVENT_ID.MAPPING:
      case EVENT_ID.SEQUENCE: {
        written++;
        let anchor: Anchor | undefined;
        if (event.anchorStart >= 0) {
          anchor = { size: 0, open: true, keyName: undefined };
          anchors.set(text.slice(event.anchorStart, event.anchorEnd), anchor);
        }
        const mapping = event.type === EVENT_ID.MAPPING;
        // A collection used as a key: its position is where the key starts.
        const parent = frames[frames.length - 1];
        if (parent?.mapping && parent.expectKey) parent.key = '?';
        frames.push({
          mapping,
          seen: mapping ? new Map() : undefined,
          key: mapping ? '' : 0,
          expectKey: true,
          size: 1,
          anchor,
        });
        break;
      }
      case EVENT_ID.POP: {
        const frame = frames.pop();
        if (frame === undefined) break;
        if (frame.anchor) {
          frame.anchor.size = frame.size;
          frame.anchor.open = false;
        }
        add(frame.size, undefined, -1);
        break;
      }
      case EVENT_ID.ALIAS: {
        written++;
        const at = event.anchorStart - 1;
        if (++aliases > MAX_ALIASES) throw aliasError(text, at, `more than ${MAX_ALIASES} aliases`);
        const name = text.slice(event.anchorStart, event.anchorEnd);
        const anchor = anchors.get(name);
        // An unknown anchor is js-yaml's to report, with its own message.
        if (anchor === undefined) {
          add(1, undefined, at);
          break;
        }
        if (anchor.open) throw aliasError(text, at, `*${name} refers to a node that contains it`);
        add(anchor.size, anchor.keyName, at);
        break;
      }
      default:
        // Documents add no node. Several documents are refused after construction.
        break;
    }
  }
  if (rootSize - written > Math.max(written, MAX_ALIAS_GROWTH)) {
    throw new ConfigError(
      '',
      `invalid YAML: Excessive alias count: aliases would expand the config from ${written} to ${rootSize} nodes`,
    );
  }
}

/**
 * The property name a scalar becomes as a mapping key, as js-yaml names it: a plain scalar is
 * resolved by the schema (`1.0` is the number 1, so the key "1"; `~` and `null` are "null"),
 * anything else is its text. A tagged key (`!!str 1`) is taken as written: js-yaml's own check
 * still refuses a duplicate this misses, with its line.
 */
function keyNameOf(text: string, event: ScalarEvent): string {
  const value = getScalarValue(text, event);
  if (event.style !== SCALAR_STYLE.PLAIN || event.tagStart >= 0 || !mayResolve(value)) return value;
  return String(CORE_SCHEMA.resolveImplicitScalarTag(value).value);
}

/** False for plain scalars that are surely strings (no core-schema null, bool, int or float). */
function mayResolve(value: string): boolean {
  if (value === '') return true;
  const c = value.charCodeAt(0);
  // Digits, + - . ~ and the first letters of null/true/false (any case).
  return (c >= 48 && c <= 57) || '+-.~nNtTfF'.includes(value[0]!);
}

/** Where a scalar is written: its tag, else its anchor (`&`), else its opening quote or text. */
function scalarStart(event: ScalarEvent): number {
  if (event.tagStart >= 0) return event.tagStart;
  if (event.anchorStart >= 0) return event.anchorStart - 1;
  const quoted = event.style === SCALAR_STYLE.SINGLE_QUOTED || event.style === SCALAR_STYLE.DOUBLE_QUOTED;
  return quoted ? event.valueStart - 1 : event.valueStart;
}

function duplicate(
  text: string,
  frames: readonly Frame[],
  key: string,
  at: number,
  first: number,
): ConfigError {
  let path = '';
  for (let i = 0; i < frames.length - 1; i++) {
    const seg = frames[i]!.key;
    path = typeof seg === 'number' ? `${path}[${seg}]` : joinPath(path, seg);
  }
  path = joinPath(path, key);
  const here = linePos(text, at);
  const there = linePos(text, first);
  return new ConfigError(
    path,
    `duplicate key at line ${here.line}, column ${here.col} (first at line ${there.line})`,
  );
}

function aliasError(text: string, at: number, problem: string): ConfigError {
  const pos = linePos(text, at);
  return new ConfigError('', `invalid YAML at line ${pos.line}, column ${pos.col}: ${problem}`);
}

/** 1-based line and column of an offset; only for errors, so a scan is fine. */
function linePos(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}
