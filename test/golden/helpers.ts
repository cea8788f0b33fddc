import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseHieraConfig, type HieraConfig } from '../../main/core/model/config.ts';
import { readSafetensors } from '../../main/core/model/safetensors.ts';
import type { StateDict } from '../../main/core/model/tensor.ts';

export const GOLDEN = resolve(process.cwd(), '../shared/golden');
export const HIERA_MINI = resolve(GOLDEN, 'hiera_mini');
export const SAM2UNET_MINI = resolve(GOLDEN, 'sam2unet_mini');

export async function manifestConfig(dir: string): Promise<HieraConfig> {
  return parseHieraConfig(JSON.parse(await readFile(resolve(dir, 'manifest.json'), 'utf8')), `${dir}/manifest.json`);
}

export { readSafetensors };

/** Largest |a − b|, NaN-aware (a NaN anywhere counts as infinitely wrong). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function goldenAvailable(): boolean {
  return existsSync(HIERA_MINI) && existsSync(SAM2UNET_MINI);
}

export type { StateDict };
