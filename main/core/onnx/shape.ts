/**
 * Tensor element types, shapes and symbolic-dim arithmetic: the leaf that the op table (ops.ts)
 * and the graph (ir.ts) both build on.
 *
 * Shapes are static except for symbolic dims: a symbolic dim is a string, either a bare parameter
 * name ('batch') or `k*name` (e.g. '121*batch' after folding windows into the batch axis).
 */

/** float16 values are stored as their IEEE half bits (Uint16Array); int8/uint8/int32 come with quantized graphs */
export type TensorType = 'float32' | 'float64' | 'int64' | 'bool' | 'float16' | 'int8' | 'uint8' | 'int32';
export type Dim = number | string;
export type Shape = Dim[];

export interface ValueInfo {
  name: string;
  dtype: TensorType;
  shape: Shape;
}

export type InitializerData = Float32Array | Float64Array | BigInt64Array | Uint8Array | Int8Array | Int32Array | Uint16Array;

interface SymDim {
  coef: number;
  /** undefined for a plain number */
  sym?: string;
}

export function parseDim(d: Dim): SymDim {
  if (typeof d === 'number') return { coef: d };
  const m = /^(?:(\d+)\*)?([A-Za-z_][\w]*)$/.exec(d);
  if (!m) throw new Error(`bad symbolic dim "${d}"`);
  return { coef: m[1] ? Number(m[1]) : 1, sym: m[2] };
}

export function formatDim(d: SymDim): Dim {
  if (!d.sym) return d.coef;
  return d.coef === 1 ? d.sym : `${d.coef}*${d.sym}`;
}

export function mulDims(a: Dim, b: Dim): Dim {
  const x = parseDim(a);
  const y = parseDim(b);
  if (x.sym && y.sym) throw new Error(`cannot multiply two symbolic dims ${a} and ${b}`);
  return formatDim({ coef: x.coef * y.coef, sym: x.sym ?? y.sym });
}

/** a / b when exact, else undefined. */
export function divDims(a: Dim, b: Dim): Dim | undefined {
  const x = parseDim(a);
  const y = parseDim(b);
  if (y.sym) {
    if (x.sym !== y.sym || x.coef % y.coef !== 0) return undefined;
    return x.coef / y.coef;
  }
  if (x.coef % y.coef !== 0) return undefined;
  return formatDim({ coef: x.coef / y.coef, sym: x.sym });
}

export function sameDim(a: Dim, b: Dim): boolean {
  return formatDim(parseDim(a)) === formatDim(parseDim(b));
}

export function numelOf(shape: Shape): Dim {
  return shape.reduce<Dim>((acc, d) => mulDims(acc, d), 1);
}

/** A dim with its symbol set to a concrete value (for FLOP counts and buffer sizes). */
export function concreteDim(d: Dim, symbols: Record<string, number>): number {
  const p = parseDim(d);
  if (!p.sym) return p.coef;
  const v = symbols[p.sym];
  if (v === undefined) throw new Error(`no value for symbolic dim "${p.sym}"`);
  return p.coef * v;
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}
