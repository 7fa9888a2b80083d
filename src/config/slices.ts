/**
 * How a validated config crosses from the loader thread to the main thread. Deserialising a
 * message is one task the main thread cannot interrupt: 50,000 tenants as one structured clone
 * held it for 400 ms, and freezing them for 200 ms more. So every map with more entries than a
 * slice (tenants, limits.tenants) travels as JSON strings of a slice of entries each (copied, not
 * parsed, on arrival), and the main thread parses and freezes one slice per event-loop turn.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { deepFreeze } from './freeze.ts';

/** A map taken out of the config: where it was, and how many of the slices it fills. */
export interface SlicedMap {
  readonly path: readonly string[];
  readonly slices: number;
}

export interface SlicedConfig {
  /** The config with each sliced map replaced by an empty object. */
  readonly skeleton: object;
  readonly maps: readonly SlicedMap[];
  /** JSON arrays of [key, value] entries, in the order of `maps`. */
  readonly slices: readonly string[];
}

/** Loader-thread side. Mutates `config` (its own copy) into the skeleton. */
export function sliceConfig(config: object, perSlice: number): SlicedConfig {
  const maps: SlicedMap[] = [];
  const slices: string[] = [];
  const path: string[] = [];
  const walk = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const item of node) walk(item);
      return;
    }
    const record = node as Record<string, unknown>;
    const keys = Object.keys(record);
    for (const key of keys) {
      const child = own(record, key);
      if (!isRecord(child)) {
        walk(child);
        continue;
      }
      const childKeys = Object.keys(child);
      path.push(key);
      if (childKeys.length > perSlice) {
        let count = 0;
        for (let start = 0; start < childKeys.length; start += perSlice) {
          const entries = childKeys.slice(start, start + perSlice).map((k) => [k, own(child, k)]);
          slices.push(JSON.stringify(entries));
          count++;
        }
        maps.push({ path: [...path], slices: count });
        define(record, key, {});
      } else walk(child);
      path.pop();
    }
  };
  walk(config);
  return { skeleton: config, maps, slices };
}

/** Main-thread side: fills the skeleton's maps back in, a slice per turn, and deep-freezes it. */
export async function rebuildConfig<T>(sliced: SlicedConfig): Promise<T> {
  let next = 0;
  for (const map of sliced.maps) {
    let target: unknown = sliced.skeleton;
    for (const key of map.path) target = own(target as Record<string, unknown>, key);
    const record = target as Record<string, unknown>;
    for (let i = 0; i < map.slices; i++) {
      await nextTurn();
      const entries = JSON.parse(sliced.slices[next++]!) as Array<[string, unknown]>;
      for (const [key, value] of entries) define(record, key, deepFreeze(value));
    }
    Object.freeze(record);
  }
  return deepFreeze(sliced.skeleton) as T;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** An own property (a key named `__proto__` is one: model names may be anything). */
function own(record: Record<string, unknown>, key: string): unknown {
  return key === '__proto__' ? Object.getOwnPropertyDescriptor(record, key)?.value : record[key];
}

function define(record: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  } else record[key] = value;
}
