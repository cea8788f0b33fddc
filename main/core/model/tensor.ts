/** A named float32 tensor as checkpoints, safetensors files and the engine exchange them. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** Parameters and buffers by their official PyTorch key names. */
export type StateDict = Map<string, Tensor>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  if (data && data.length !== n) throw new Error(`tensor of shape [${shape}] needs ${n} values, got ${data.length}`);
  return { shape, data: data ?? new Float32Array(n) };
}
