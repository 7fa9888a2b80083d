/**
 * The builders every config schema section uses: closed objects (unknown keys refused), names,
 * string enums, name-keyed maps, milliseconds and priority shares.
 */
import { type TObject, type TProperties, type TSchema, Type } from '@sinclair/typebox';

export const closed = <T extends TProperties>(properties: T, description?: string): TObject<T> =>
  Type.Object(properties, { additionalProperties: false, ...(description ? { description } : {}) });

export const Name = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' });
/** A string enum as JSON Schema `enum` (clearer errors than a union of literals). */
export const StringEnum = <T extends string>(values: readonly T[], options: Record<string, unknown> = {}) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...options });
/** A name-keyed map whose keys must be valid names. */
export const NamedMap = <T extends TSchema>(item: T, options: Record<string, unknown> = {}) =>
  Type.Record(Name, item, { additionalProperties: false, ...options });
export const Milliseconds = (description: string, def?: number) =>
  Type.Integer({
    minimum: 1,
    maximum: 86_400_000,
    description,
    ...(def === undefined ? {} : { default: def }),
  });
/** A priority's share of a capacity, (0, 1]. */
export const Share = (def: number) => Type.Number({ exclusiveMinimum: 0, maximum: 1, default: def });
/** A public model name: 1 to 256 characters, no control characters. */
export const ModelName = Type.String({ pattern: '^[^\\x00-\\x1f]{1,256}$' });
