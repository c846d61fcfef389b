/**
 * Marks every error an @engram package throws. `Symbol.for` gives the same symbol to every
 * copy of this module in a process (two versions of a package installed side by side), so
 * a guard that checks the brand recognises errors that `instanceof` would not.
 */
export const ENGRAM_ERROR_BRAND: unique symbol = Symbol.for('@engram/error');

/** Longest string `describeValue` quotes; longer ones are described by their length. */
const MAX_QUOTED_LENGTH = 64; // characters

function brand(error: Error): void {
  // Not enumerable: it would otherwise show in every util.inspect of the error and in logs.
  Object.defineProperty(error, ENGRAM_ERROR_BRAND, { value: true });
}

/** Base class of the errors of every @engram package: `code` is stable, `message` is for humans. */
export class EngramError extends Error {
  declare readonly [ENGRAM_ERROR_BRAND]: true;
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EngramError';
    this.code = code;
    brand(this);
  }
}

/**
 * Bad input: an option or argument out of range or of the wrong type. `field` names it (a
 * path such as `nodes[2].address` when nested) and `value` is what was received. A
 * `RangeError` by intent, and branded like every EngramError (it is not an `instanceof`
 * EngramError: test with `isEngramError(e, 'InvalidArgument')`).
 */
export class InvalidArgumentError extends RangeError {
  declare readonly [ENGRAM_ERROR_BRAND]: true;
  readonly code: 'InvalidArgument';
  readonly field: string;
  readonly value: unknown;

  /** `expected` completes "`field` must be …", e.g. `'an integer in [1, 16]'`. */
  constructor(field: string, value: unknown, expected: string) {
    super(`${field} must be ${expected}, received ${describeValue(value)}`);
    this.name = 'InvalidArgumentError';
    this.code = 'InvalidArgument';
    this.field = field;
    this.value = value;
    brand(this);
  }
}

/**
 * A SharedArrayBuffer does not match the layout its reader expects: it holds another kind of
 * structure, one written by another layout version, or one created with other options.
 */
export class LayoutMismatchError extends EngramError {
  declare readonly code: 'LayoutMismatch';
  /** The structure the reader expected, e.g. `'breaker table'`. */
  readonly what: string;
  /** What differs. */
  readonly reason: string;

  constructor(what: string, reason: string) {
    super('LayoutMismatch', `buffer is not a compatible ${what}: ${reason}`);
    this.name = 'LayoutMismatchError';
    this.what = what;
    this.reason = reason;
  }
}

/**
 * True when `error` carries the @engram error brand (and, when given, has this `code`). Works
 * across copies of the packages, where `instanceof` does not.
 */
export function isEngramError(error: unknown, code?: string): error is { code: string } & Error {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { readonly [ENGRAM_ERROR_BRAND]?: unknown; readonly code?: unknown };
  if (e[ENGRAM_ERROR_BRAND] !== true || typeof e.code !== 'string') return false;
  return code === undefined || e.code === code;
}

/**
 * A short rendering of any value for an error message: strings quoted (described by their
 * length past 64 characters), numbers as written, objects by kind and size. Calls none of the
 * value's methods or getters (no `toString`, no `toJSON`: Proxy traps aside) and never throws.
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value.length > MAX_QUOTED_LENGTH
        ? `a string of ${value.length} characters`
        : JSON.stringify(value);
    case 'bigint':
      return `${value}n`;
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    case 'object':
      if (value === null) return 'null';
      try {
        return describeObject(value);
      } catch {
        // A revoked Proxy throws on every inspection.
        return 'an object';
      }
    default:
      return String(value);
  }
}

function describeObject(value: object): string {
  if (Array.isArray(value)) return `an array of ${count(value.length, 'item')}`;
  if (value instanceof ArrayBuffer) return `an ArrayBuffer of ${count(value.byteLength, 'byte')}`;
  if (value instanceof SharedArrayBuffer) {
    return `a SharedArrayBuffer of ${count(value.byteLength, 'byte')}`;
  }
  if (value instanceof DataView) return `a DataView of ${count(value.byteLength, 'byte')}`;
  if (ArrayBuffer.isView(value)) {
    const length = (value as unknown as { readonly length: number }).length;
    return `${withArticle(constructorName(value) ?? 'typed array')} of ${count(length, 'element')}`;
  }
  if (value instanceof Map) return `a Map of ${count(value.size, 'entry', 'entries')}`;
  if (value instanceof Set) return `a Set of ${count(value.size, 'entry', 'entries')}`;
  const name = constructorName(value);
  return name === undefined || name === 'Object' ? 'an object' : `an instance of ${name}`;
}

function constructorName(value: object): string | undefined {
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === null || typeof proto !== 'object') return undefined;
  const descriptor = Object.getOwnPropertyDescriptor(proto, 'constructor');
  const ctor: unknown = descriptor?.value;
  if (typeof ctor !== 'function') return undefined;
  const name = Object.getOwnPropertyDescriptor(ctor, 'name')?.value;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

function withArticle(noun: string): string {
  // Not U: the typed arrays starting with it read "a Uint8Array".
  return /^[AEIOaeio]/.test(noun) ? `an ${noun}` : `a ${noun}`;
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
