/**
 * The calibration pass of int8 graphs: the float32 graph runs a few slices of one generated
 * BraTS-like phantom, and the range each map of onnx/quantize.ts's calibrationTargets takes over
 * them becomes that map's fixed uint8 scale in the int8 graph. A generated study, not
 * the user's: the int8 model is then a function of the weights alone and is cached like the others.
 */
import type { Graph } from '../onnx/ir.ts';
import { calibrationTargets } from '../onnx/quantize.ts';
import { SessionClient } from '../onnx/session.ts';
import { joinChunks, serializeModel } from '../onnx/writer.ts';
import { generatePhantomCase } from '../phantom/generate.ts';
import { prepareSlices } from './preprocess.ts';

/** Bumped whenever the calibration set or statistic changes (part of the int8 cache key). */
export const CALIBRATION_ID = 'phantom-classic-7:v2';
const PHANTOM_SEED = 7;
/** slices relative to the tumour's centre, in voxels: through the tumour, its rim and healthy brain */
const SLICE_OFFSETS = [-40, -8, 0, 6, 30];

/** The calibration input: (slices, 3, height, width), the model's default sequences FLAIR, T1ce, T2. */
export function calibrationInput(height: number, width: number): { data: Float32Array; count: number } {
  const phantom = generatePhantomCase(PHANTOM_SEED, 0);
  const depth = phantom.sequences.flair.dims[2];
  const centre = Math.round(phantom.info.tumourCentroid[2]);
  const slices = SLICE_OFFSETS.map((d) => Math.min(depth - 1, Math.max(0, centre + d)));
  const data = prepareSlices([phantom.sequences.flair, phantom.sequences.t1ce, phantom.sequences.t2], slices, { size: [height, width] });
  return { data, count: slices.length };
}

/**
 * [min, max] of every calibration target of the float32 inference graph `graph` over the
 * calibration slices (the graph is not changed); empty when the graph has none. A target whose
 * map was constant there is left out, and stays dynamically quantized.
 */
export async function calibrateStaticRanges(graph: Graph, inputName: string, keepFloat: (weightName: string) => boolean, height: number, width: number): Promise<Map<string, [number, number]>> {
  const ranges = new Map<string, [number, number]>();
  const targets = calibrationTargets(graph, keepFloat);
  if (targets.length === 0) return ranges;
  const outputs = graph.outputs.splice(0, graph.outputs.length, ...targets);
  let model: Uint8Array;
  try {
    model = joinChunks(serializeModel(graph, { docString: 'int8 calibration' }));
  } finally {
    graph.outputs.splice(0, graph.outputs.length, ...outputs);
  }
  const session = await SessionClient.create(model, { device: 'cpu' });
  try {
    const { data, count } = calibrationInput(height, width);
    // one slice a run: a batch of five at 352² would hold every target map five times over
    for (let i = 0; i < count; i++) {
      const plane = 3 * height * width;
      const result = await session.run({ [inputName]: { dims: [1, 3, height, width], data: data.slice(i * plane, (i + 1) * plane) } });
      for (const t of targets) {
        const values = result[t]!.data;
        let [lo, hi] = ranges.get(t) ?? [Infinity, -Infinity];
        for (let k = 0; k < values.length; k++) {
          const v = values[k]!;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        ranges.set(t, [lo, hi]);
      }
    }
  } finally {
    await session.dispose();
  }
  // a map that took one value only (or none that is finite) gives no scale: it stays dynamic
  for (const [name, [lo, hi]] of ranges) if (!(hi > lo) || !Number.isFinite(lo) || !Number.isFinite(hi)) ranges.delete(name);
  return ranges;
}
