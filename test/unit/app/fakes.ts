// Small in-memory studies and ports for the wiring tests: the real readers, model and writers
// have their own tests; these check that calls, events and guards are routed right.
import { writeFile } from 'node:fs/promises';
import type { Ports } from '../../../main/core/api-ports.ts';
import type { Study } from '../../../main/core/io/study.ts';
import { Volume } from '../../../main/core/io/volume.ts';

export const DIMS: [number, number, number] = [4, 3, 2];

/**
 * `memory`: 'view' — the image is a view into a larger buffer, as a 4-D NIfTI's frames are;
 * 'shared' — it is in shared memory, as the reader worker hands volumes over.
 */
export function tinyStudy(name = 'tiny', memory: 'own' | 'view' | 'shared' = 'own'): Study {
  const geometry = { dims: DIMS, spacing: [1, 1, 2] as [number, number, number], origin: [0, 0, 0] as [number, number, number], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
  const image = memory === 'view' ? new Int16Array(48).subarray(24) : memory === 'shared' ? new Int16Array(new SharedArrayBuffer(48)) : new Int16Array(24);
  for (let i = 0; i < 24; i++) image[i] = i * 10;
  const seg = new Uint8Array(24);
  seg[5] = 2;
  seg[6] = 4;
  seg[17] = 1;
  return {
    name,
    kind: 'brats',
    source: `/data/${name}`,
    sequences: { flair: new Volume({ geometry, data: image, meta: { id: 'flair', description: '', modality: 'MR', sources: [] } }) },
    seg: new Volume({ geometry, data: seg, meta: { id: 'seg', description: '', modality: 'SEG', sources: [] } }),
  };
}

export interface FakeCalls {
  written: { target: string; labels: Uint8Array }[];
}

/** Segmentation copies the ground truth slice by slice (pausing between slices so cancel can land). */
export function fakePorts(calls: FakeCalls = { written: [] }, options: { segmentation?: boolean; sliceDelayMs?: number } = {}): Ports {
  return {
    async openPath(path) {
      if (path.endsWith('missing')) throw new Error(`${path}: no such file or directory`);
      return { studies: [tinyStudy('tiny', path.endsWith('view') ? 'view' : path.endsWith('shared') ? 'shared' : 'own')], notes: ['a note'] };
    },
    async segmentation() {
      if (options.segmentation === false) return { availability: { available: false, reason: 'no engine in this test' }, devices: [] };
      return {
        availability: { available: true },
        devices: ['cpu'],
        run: async (study, { signal, onSlice }) => {
          const [nx, ny, nz] = study.seg!.dims;
          for (let k = 0; k < nz; k++) {
            await new Promise((r) => setTimeout(r, options.sliceDelayMs ?? 1));
            if (signal.aborted) throw new (await import('../../../main/core/errors.ts')).CancelledError();
            onSlice(k, (study.seg!.data as Uint8Array).slice(k * nx * ny, (k + 1) * nx * ny), { WT: 1, TC: 1, ET: null }, 3);
          }
          return { device: 'cpu', dice: { WT: 1, TC: 1, ET: 1 }, run: { model: 'fake', checkpoint: 'fake.pth', preset: 'fake', device: 'cpu', inputSize: 32, regions: 'brats' as const, channels: 'flair ← flair', notes: [], loadMs: 0, ms: 1 } };
        },
      };
    },
    async bundledModel() {
      return null;
    },
    async inspectCheckpoint(path) {
      if (!path.endsWith('.pth')) throw new Error(`${path}: not a checkpoint`);
      return { kind: 'sam2unet', outChannels: 3, embedDim: 8, preset: null, run: {} };
    },
    async training() {
      return { availability: { available: false, reason: 'no training in this test' } };
    },
    async exporter(format) {
      if (format !== 'nifti') return { availability: { available: false, reason: `${format} not in this test` } };
      return {
        availability: { available: true },
        write: async (target, { labels }) => {
          calls.written.push({ target, labels: labels.data as Uint8Array });
          await writeFile(target, 'fake');
          return [target];
        },
      };
    },
    async exporterAvailability(format) {
      return (await this.exporter(format)).availability;
    },
  };
}
