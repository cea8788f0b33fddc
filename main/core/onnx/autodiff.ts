/**
 * Reverse-mode automatic differentiation over the graph IR, emitting the backward pass as more
 * nodes of the same graph (standard ONNX ops only: onnxruntime-node has none of ORT's *Grad
 * training ops). Each op's vector-Jacobian rule is in its row of the op table (ops.ts), beside its
 * shape rule; this module walks the graph backwards and applies them.
 *
 * Backward graphs need static shapes: training graphs are built for a fixed batch size.
 */
import type { Graph } from './ir.ts';
import { OPS, filledLike, type OpSpec } from './ops.ts';
import type { TensorType } from './shape.ts';

/**
 * A composite with its own backward rule (JAX's custom_vjp): when `output` receives a gradient,
 * `rule` maps it straight to gradients of `inputs`, and the composite's inner nodes get none.
 * Used where the closed form is markedly more accurate than differentiating the composition
 * (train-mode BatchNorm, whose composed backward cancels three paths in float32).
 */
export interface CustomVjp {
  inputs: string[];
  rule: (gy: string) => (string | undefined)[];
}

const customRules = new WeakMap<Graph, Map<string, CustomVjp>>();

export function defineCustomVjp(g: Graph, output: string, custom: CustomVjp): void {
  let rules = customRules.get(g);
  if (!rules) customRules.set(g, (rules = new Map()));
  rules.set(output, custom);
}

const DIFFERENTIABLE: ReadonlySet<TensorType> = new Set<TensorType>(['float32', 'float64']);

export interface GradientOptions {
  /** gradient of the loss itself (default: ones of the loss's shape) */
  seed?: string;
  /** prefix for the names of the backward values */
  scope?: string;
}

/**
 * Appends the backward pass of `loss` to `g` and returns, for each name in `wrt`, the value holding
 * ∂loss/∂name — or undefined when `loss` does not depend on it (e.g. the official model's unused up4).
 * Only nodes on a path from some `wrt` to `loss` are differentiated, so frozen weights and the
 * data input cost nothing in the backward pass.
 */
export function gradients(g: Graph, loss: string, wrt: readonly string[], opts: GradientOptions = {}): Map<string, string | undefined> {
  return g.scope(opts.scope ?? 'grad', () => {
    const nodes = [...g.nodes];
    const lossProducer = nodes.findIndex((n) => n.outputs.includes(loss));
    const requires = new Set(wrt);
    for (const node of nodes) {
      if (node.inputs.some((i) => i && requires.has(i))) {
        for (const o of node.outputs) if (DIFFERENTIABLE.has(g.info(o).dtype)) requires.add(o);
      }
    }
    const contributes = new Set([loss]);
    for (let i = lossProducer; i >= 0; i--) {
      const node = nodes[i]!;
      if (node.outputs.some((o) => contributes.has(o))) for (const input of node.inputs) if (input) contributes.add(input);
    }

    const pending = new Map<string, string[]>();
    const push = (value: string, grad: string): void => {
      const list = pending.get(value);
      if (list) list.push(grad);
      else pending.set(value, [grad]);
    };
    const total = (value: string): string | undefined => {
      const list = pending.get(value);
      if (!list?.length) return undefined;
      const sum = list.reduce((acc, v) => g.add(acc, v));
      pending.set(value, [sum]);
      return sum;
    };

    push(loss, opts.seed ?? ones(g, loss));
    const custom = customRules.get(g);
    for (let i = lossProducer; i >= 0; i--) {
      const node = nodes[i]!;
      const gy = node.outputs.map(total);
      if (gy.every((v) => v === undefined)) continue;
      const composite = node.outputs.length === 1 ? custom?.get(node.outputs[0]!) : undefined;
      if (composite) {
        const grads = composite.rule(gy[0]!);
        composite.inputs.forEach((input, k) => {
          const grad = grads[k];
          if (grad && requires.has(input) && contributes.has(input)) push(input, grad);
        });
        continue;
      }
      const needs = node.inputs.map((input) => Boolean(input) && requires.has(input) && contributes.has(input) && DIFFERENTIABLE.has(g.info(input).dtype));
      if (!needs.some(Boolean)) continue;
      const rule: OpSpec['vjp'] = OPS[node.op].vjp;
      if (rule === 'zero') continue;
      if (rule === 'inference-only') {
        throw new Error(
          `${node.op} is inference-only (no vector-Jacobian rule), so a training graph cannot differentiate through it: ` +
            `node ${node.op}(${node.inputs.join(', ')}) → ${node.outputs.join(', ')}`,
        );
      }
      const grads = rule({ g, node, x: node.inputs, y: node.outputs, gy, needs });
      node.inputs.forEach((input, k) => {
        const grad = grads[k];
        if (needs[k] && grad) push(input, grad);
      });
    }
    return new Map(wrt.map((name) => [name, total(name)]));
  });
}

function ones(g: Graph, like: string): string {
  const dtype = g.info(like).dtype;
  if (!DIFFERENTIABLE.has(dtype)) throw new Error(`cannot seed a gradient of type ${dtype}`);
  return filledLike(g, like, 1);
}
