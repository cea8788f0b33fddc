/**
 * The graph IR: a list of nodes over named values. Every node is one primitive op from the table in
 * ops.ts (which holds each op's attribute schema, shape rule, FLOPs and vector-Jacobian rule);
 * layers are compositions built in the model files. Parameters keep their official PyTorch key
 * names as initializer names, so a training graph can turn any of them into a graph input.
 * Element types, shapes and symbolic dims are in shape.ts.
 */
import type { Tensor } from '../model/tensor.ts';
import { OPS, type Attrs, type GraphBuilder, type Node, type OpName } from './ops.ts';
import type { InitializerData, Shape, TensorType, ValueInfo } from './shape.ts';

export interface Initializer {
  name: string;
  dtype: TensorType;
  shape: number[];
  data: InitializerData;
}

// ---- the graph ----

export class Graph implements GraphBuilder {
  readonly values = new Map<string, ValueInfo>();
  readonly nodes: Node[] = [];
  readonly initializers = new Map<string, Initializer>();
  readonly inputs: string[] = [];
  readonly outputs: string[] = [];
  private counter = 0;
  private prefix = '';
  /**
   * An inference-only graph: layers may use fused ops whose row in the op table is
   * 'inference-only' (ONNX Runtime's MultiHeadAttention). Training graphs leave this false and get primitive compositions.
   */
  inferenceOnly = false;
  /**
   * Set by training graphs: constants derived from weights (the resized positional embedding)
   * are built as ops instead, so gradients reach the weights they come from.
   */
  trainable = false;

  /** Values named inside `fn` get `prefix/` in front (readable graphs, unique names). */
  scope<T>(prefix: string, fn: () => T): T {
    const saved = this.prefix;
    this.prefix = saved ? `${saved}/${prefix}` : prefix;
    try {
      return fn();
    } finally {
      this.prefix = saved;
    }
  }

  private fresh(hint: string): string {
    let name: string;
    do name = `${this.prefix ? this.prefix + '/' : ''}${hint}_${this.counter++}`;
    while (this.values.has(name));
    return name;
  }

  info(name: string): ValueInfo {
    const v = this.values.get(name);
    if (!v) throw new Error(`unknown value "${name}"`);
    return v;
  }

  shape(name: string): Shape {
    return this.info(name).shape;
  }

  private define(info: ValueInfo): string {
    if (this.values.has(info.name)) throw new Error(`value "${info.name}" defined twice`);
    this.values.set(info.name, info);
    return info.name;
  }

  input(name: string, dtype: TensorType, shape: Shape): string {
    this.define({ name, dtype, shape });
    this.inputs.push(name);
    return name;
  }

  /** A parameter or buffer under its official key name (no copy of the data). */
  param(name: string, t: Tensor): string {
    const hooked = this.paramHook?.(name, t);
    if (hooked !== undefined) return hooked;
    const existing = this.initializers.get(name);
    if (existing) return name;
    this.initializers.set(name, { name, dtype: 'float32', shape: [...t.shape], data: t.data });
    return this.define({ name, dtype: 'float32', shape: [...t.shape] });
  }

  /** A derived constant (auto-named unless `name` is given; with `reuse`, an existing constant of that name is returned). */
  constant(data: InitializerData, shape: number[], dtype: TensorType = 'float32', name?: string, reuse = false): string {
    if (name && reuse && this.initializers.has(name)) return name;
    const n = name ?? this.fresh('const');
    this.initializers.set(n, { name: n, dtype, shape, data });
    return this.define({ name: n, dtype, shape });
  }

  /** An int64 vector constant, deduplicated (shapes, axes, pads are used many times). */
  private int64Cache = new Map<string, string>();
  ints(values: readonly number[]): string {
    const key = values.join(',');
    const hit = this.int64Cache.get(key);
    // a rewrite may have pruned it since (pruneUnusedInitializers)
    if (hit && this.initializers.has(hit)) return hit;
    const name = this.constant(BigInt64Array.from(values, (v) => BigInt(v)), [values.length], 'int64', `i64[${key}]`);
    this.int64Cache.set(key, name);
    return name;
  }

  private scalarCache = new Map<number, string>();
  /** A float32 scalar constant (shape []), deduplicated. */
  scalar(value: number): string {
    const hit = this.scalarCache.get(value);
    if (hit && this.initializers.has(hit)) return hit;
    const name = this.constant(Float32Array.of(value), [], 'float32', `f32(${value})`);
    this.scalarCache.set(value, name);
    return name;
  }

  /** The int64 values of a constant, or undefined if `name` is not a constant. */
  constantInts(name: string): number[] | undefined {
    const init = this.initializers.get(name);
    if (!init || init.dtype !== 'int64') return undefined;
    return Array.from(init.data as BigInt64Array, Number);
  }

  constantFloats(name: string): Float32Array | undefined {
    const init = this.initializers.get(name);
    if (!init || init.dtype !== 'float32') return undefined;
    return init.data as Float32Array;
  }

  /**
   * Rewrites applied while a graph is being built, so one model builder serves inference and
   * training: `lowering` replaces an op by a composition (train-mode BatchNorm), `paramHook` puts
   * an expression in place of a parameter (LoRA's W + s·B·A). Both return undefined to pass.
   */
  lowering: Partial<Record<OpName, (inputs: string[], attrs: Attrs) => string[] | undefined>> = {};
  paramHook?: (name: string, tensor: Tensor) => string | undefined;
  private loweringActive = new Set<OpName>();

  /** Appends a node of a primitive op; returns its output value names. */
  node(op: OpName, inputs: string[], attrs: Attrs = {}, outputCount = 1, names?: string[]): string[] {
    const lower = this.lowering[op];
    if (lower && !names && !this.loweringActive.has(op)) {
      this.loweringActive.add(op);
      try {
        const lowered = lower(inputs, attrs);
        if (lowered) return lowered;
      } finally {
        this.loweringActive.delete(op);
      }
    }
    const spec = OPS[op];
    for (const key of Object.keys(attrs)) {
      if (!(key in spec.attrs)) throw new Error(`${op}: unknown attribute "${key}"`);
    }
    const infos = inputs.map((i) => (i === '' ? undefined : this.info(i)));
    const outs = spec.infer({ op, inputs: infos, attrs, graph: this, outputCount });
    const outputs = outs.map((o, k) => this.define({ name: names?.[k] ?? this.fresh(op), dtype: o.dtype, shape: o.shape }));
    this.nodes.push({ op, inputs, outputs, attrs });
    return outputs;
  }

  /** Single-output node. */
  op(op: OpName, inputs: string[], attrs: Attrs = {}, name?: string): string {
    return this.node(op, inputs, attrs, 1, name ? [name] : undefined)[0]!;
  }

  /** Marks `value` as the graph output `name` (renames the producing node's output when possible). */
  output(name: string, value: string): string {
    let final = value;
    if (value !== name) {
      const producer = this.nodes.find((n) => n.outputs.includes(value));
      const consumed = this.nodes.some((n) => n.inputs.includes(value));
      if (producer && !consumed && !this.outputs.includes(value) && !this.values.has(name)) {
        producer.outputs[producer.outputs.indexOf(value)] = name;
        const info = this.values.get(value)!;
        this.values.delete(value);
        this.define({ ...info, name });
      } else {
        this.op('Identity', [value], {}, name);
      }
      final = name;
    }
    this.outputs.push(final);
    return final;
  }

  // ---- short builders for the ops used everywhere ----
  add(a: string, b: string): string { return this.op('Add', [a, b]); }
  sub(a: string, b: string): string { return this.op('Sub', [a, b]); }
  mul(a: string, b: string): string { return this.op('Mul', [a, b]); }
  div(a: string, b: string): string { return this.op('Div', [a, b]); }
  matmul(a: string, b: string): string { return this.op('MatMul', [a, b]); }
  relu(x: string): string { return this.op('Relu', [x]); }
  gelu(x: string): string { return this.op('Gelu', [x]); }
  transpose(x: string, perm: number[]): string { return this.op('Transpose', [x], { perm }); }
  reshape(x: string, shape: readonly number[]): string { return this.op('Reshape', [x, this.ints(shape)]); }
  concat(xs: string[], axis: number): string { return this.op('Concat', xs, { axis }); }
  softmax(x: string, axis = -1): string { return this.op('Softmax', [x], { axis }); }
  slice(x: string, starts: number[], ends: number[], axes: number[]): string {
    return this.op('Slice', [x, this.ints(starts), this.ints(ends), this.ints(axes)]);
  }
  pad(x: string, pads: number[]): string { return this.op('Pad', [x, this.ints(pads)]); }
  split(x: string, sizes: number[], axis: number): string[] {
    return this.node('Split', [x, this.ints(sizes)], { axis }, sizes.length);
  }
  reduceMax(x: string, axes: number[], keepdims = false): string {
    return this.op('ReduceMax', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
}
