/**
 * Schemas for every message that crosses a process or network boundary (architecture.md, "The
 * contract"): each schema is a validator AND the source of its TypeScript type (`Infer<typeof X>`),
 * so a type and the check of its messages cannot drift apart.
 *
 * In-house combinators rather than a schema library (zod, valibot): the renderer, the Electron
 * preload and the web server all load this file, so it must stay tiny and dependency-free; the
 * rules that hardening needs — own properties only, `__proto__` / `constructor` / `prototype`
 * refused everywhere, typed arrays as values, a message naming the offending field — are the
 * defaults here instead of options to remember on every call; and they are fuzzed
 * (test/unit/hardening) as they are.
 *
 * Must stay free of Node and DOM imports.
 */

/** Returns null when `value` is valid, else a message naming the offending field (`at`). */
export interface Schema<T> {
  (value: unknown, at: string): string | null;
  /** phantom: carries the type the schema checks; never set */
  readonly __type?: T;
}
export type Infer<S> = S extends Schema<infer T> ? T : never;
/** A schema whose type does not matter to the caller. */
export type Check = Schema<unknown>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type Shape = Record<string, Schema<unknown>>;
type Required_<R extends Shape> = { [K in keyof R]: Infer<R[K]> };
type Optional_<O extends Shape> = { [K in keyof O]?: Infer<O[K]> };
export type ObjectOf<R extends Shape, O extends Shape> = Simplify<Required_<R> & Optional_<O>>;

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

const MAX_STRING = 4096;

/**
 * Keys no message may carry: merged into an object (settings, a record) they would reach its
 * prototype chain. Refused everywhere, even where any key is allowed.
 */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// own properties only: `key in table` is true for inherited names (toString, __proto__)
export const own = (table: object, key: string): boolean => Object.prototype.hasOwnProperty.call(table, key);

const schema = <T>(check: (value: unknown, at: string) => string | null): Schema<T> => check as Schema<T>;

type TypedArrayCtor = abstract new (...args: never[]) => ArrayBufferView;

export const s = {
  string(opts: { max?: number; nonEmpty?: boolean } = {}): Schema<string> {
    const max = opts.max ?? MAX_STRING;
    return schema((x, at) => {
      if (typeof x !== 'string') return `${at} must be a string`;
      if (x.length > max) return `${at} is longer than ${max} characters`;
      if (opts.nonEmpty && x.length === 0) return `${at} must not be empty`;
      if (x.includes('\0')) return `${at} contains a NUL character`;
      return null;
    });
  },
  number(opts: { int?: boolean; min?: number; max?: number } = {}): Schema<number> {
    return schema((x, at) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) return `${at} must be a finite number`;
      if (opts.int && !Number.isInteger(x)) return `${at} must be an integer`;
      if (opts.min !== undefined && x < opts.min) return `${at} must be ≥ ${opts.min}`;
      if (opts.max !== undefined && x > opts.max) return `${at} must be ≤ ${opts.max}`;
      return null;
    });
  },
  /** any number, NaN and ±Infinity included (losses, metrics that may be undefined) */
  anyNumber(): Schema<number> {
    return schema((x, at) => (typeof x === 'number' ? null : `${at} must be a number`));
  },
  boolean(): Schema<boolean> {
    return schema((x, at) => (typeof x === 'boolean' ? null : `${at} must be a boolean`));
  },
  /** `expected`: how the message words the allowed values (default "one of a, b, c") */
  literal<const T extends string | number>(values: readonly T[], expected = `one of ${values.join(', ')}`): Schema<T> {
    return schema((x, at) => ((values as readonly unknown[]).includes(x) ? null : `${at} must be ${expected}`));
  },
  nullable<T>(inner: Schema<T>): Schema<T | null> {
    return schema((x, at) => (x === null ? null : inner(x, at)));
  },
  array<T>(item: Schema<T>, opts: { length?: number; max?: number } = {}): Schema<T[]> {
    return schema((x, at) => {
      if (!Array.isArray(x)) return `${at} must be an array`;
      if (opts.length !== undefined && x.length !== opts.length) return `${at} must have ${opts.length} items`;
      if (opts.max !== undefined && x.length > opts.max) return `${at} has more than ${opts.max} items`;
      for (let i = 0; i < x.length; i++) {
        const problem = item(x[i], `${at}[${i}]`);
        if (problem) return problem;
      }
      return null;
    });
  },
  tuple<const T extends readonly Schema<unknown>[]>(...items: T): Schema<{ -readonly [K in keyof T]: Infer<T[K]> }> {
    return schema((x, at) => {
      if (!Array.isArray(x)) return `${at} must be an array`;
      if (x.length !== items.length) return `${at} must have ${items.length} items`;
      for (let i = 0; i < items.length; i++) {
        const problem = items[i]!(x[i], `${at}[${i}]`);
        if (problem) return problem;
      }
      return null;
    });
  },
  /** `T`: the array type as code sees it (a bare `Uint8Array`, any buffer behind it) */
  typedArray<T extends ArrayBufferView>(ctors: readonly TypedArrayCtor[]): Schema<T> {
    return schema((x, at) => (ctors.some((c) => x instanceof c) ? null : `${at} must be a ${ctors.map((c) => c.name).join(' or ')}`));
  },
  /** Exact shape: unknown keys are refused, `optional` keys may be missing (or undefined, never null). */
  object<R extends Shape, O extends Shape = Record<never, never>>(required: R, optional?: O): Schema<ObjectOf<R, O>> {
    const optionalKeys = (optional ?? {}) as Shape;
    return schema((x, at) => {
      if (!isPlainObject(x)) return `${at} must be an object`;
      for (const key of Object.keys(x)) {
        if (PROTOTYPE_KEYS.has(key)) return `${at}.${key} is not allowed`;
        if (!own(required, key) && !own(optionalKeys, key)) return `${at}.${key} is not expected`;
      }
      for (const [key, check] of Object.entries(required)) {
        if (!own(x, key)) return `${at}.${key} is missing`;
        const problem = check(x[key], `${at}.${key}`);
        if (problem) return problem;
      }
      for (const [key, check] of Object.entries(optionalKeys)) {
        if (!own(x, key) || x[key] === undefined) continue;
        const problem = check(x[key], `${at}.${key}`);
        if (problem) return problem;
      }
      return null;
    });
  },
  /** a plain object with any keys (at most `max`, each passing `key` when given), every value passing `value` */
  record<V, K extends string = string>(value: Schema<V>, opts: { max?: number; key?: Schema<K> } = {}): Schema<Record<K, V>> {
    const max = opts.max ?? 64;
    return schema((x, at) => {
      if (!isPlainObject(x)) return `${at} must be an object`;
      const keys = Object.keys(x);
      if (keys.length > max) return `${at} has more than ${max} keys`;
      for (const key of keys) {
        if (PROTOTYPE_KEYS.has(key)) return `${at}.${key} is not allowed`;
        const keyProblem = opts.key?.(key, `${at} key ${JSON.stringify(key).slice(0, 80)}`);
        if (keyProblem) return keyProblem;
        const problem = value(x[key], `${at}.${key}`);
        if (problem) return problem;
      }
      return null;
    });
  },
  /** One of several object shapes told apart by the string field `tag`. */
  union<const V extends Record<string, Schema<unknown>>>(tag: string, variants: V): Schema<Infer<V[keyof V]>> {
    return schema((x, at) => {
      if (!isPlainObject(x)) return `${at} must be an object`;
      const name = own(x, tag) ? String(x[tag]) : '';
      const variant = own(variants, name) ? variants[name] : undefined;
      return variant ? variant(x, at) : `${at}.${tag} must be one of ${Object.keys(variants).join(', ')}`;
    });
  },
  /** A schema defined later (recursive shapes). */
  lazy<T>(get: () => Schema<T>): Schema<T> {
    return schema((x, at) => get()(x, at));
  },
  /** Any value but `undefined`: for payloads checked further along (a call's request before its method is known). */
  present(): Schema<unknown> {
    return schema((x, at) => (x === undefined ? `${at} is missing` : null));
  },
  /** `undefined` (nothing) or `inner`. */
  optional<T>(inner: Schema<T>): Schema<T | undefined> {
    return schema((x, at) => (x === undefined ? null : inner(x, at)));
  },
  /** A schema with a further rule, e.g. a number between two others of the same object. */
  refine<T>(inner: Schema<T>, rule: (value: T, at: string) => string | null): Schema<T> {
    return schema((x, at) => inner(x, at) ?? rule(x as T, at));
  },
};

/** Checks `value` against `schema` and returns it typed, or throws with the schema's message. */
export function parse<T>(schemaOf: Schema<T>, value: unknown, at: string, makeError: (message: string) => Error = (m) => new TypeError(m)): T {
  const problem = schemaOf(value, at);
  if (problem) throw makeError(problem);
  return value as T;
}
