/**
 * The models the inference worker keeps loaded between jobs: loading costs seconds, and a
 * cancelled job's last batch may still be running in the session's worker, which must not be
 * torn down under it (dispose waits for it). The least recently used go when more than
 * MAX_LOADED_MODELS are loaded — a large model holds gigabytes — but never one a job is using.
 */
import { stat } from 'node:fs/promises';
import type { Device } from '../onnx/session.ts';
import type { CheckpointModel } from './model.ts';

const MAX_LOADED_MODELS = 2;
const loadedModels = new Map<string, Promise<CheckpointModel>>();
/** jobs using each model now: those are never evicted */
const modelUsers = new Map<string, number>();

function keepLoaded(key: string, model: Promise<CheckpointModel>): void {
  loadedModels.delete(key);
  loadedModels.set(key, model);
  for (const [candidate, evicted] of loadedModels) {
    if (loadedModels.size <= MAX_LOADED_MODELS) break;
    if (candidate === key || (modelUsers.get(candidate) ?? 0) > 0) continue;
    loadedModels.delete(candidate);
    void evicted.then((m) => m.dispose(), () => undefined);
  }
}

/**
 * Runs `use` with the model of `checkpoint` on `device` in `precision`, loaded by `load` unless it is loaded
 * already. A checkpoint rewritten in place (a training run finishing again) is loaded afresh.
 */
export async function withLoadedModel<T>(
  checkpoint: string,
  device: Device,
  precision: string,
  load: () => Promise<CheckpointModel>,
  use: (model: CheckpointModel, freshlyLoaded: boolean) => Promise<T>,
): Promise<T> {
  const modified = await stat(checkpoint).then((s) => s.mtimeMs, () => 0);
  const key = `${checkpoint}\0${modified}\0${device}\0${precision}`;
  let loading = loadedModels.get(key);
  const fresh = !loading;
  if (!loading) {
    loading = load();
    loading.catch(() => loadedModels.delete(key));
  }
  keepLoaded(key, loading);
  modelUsers.set(key, (modelUsers.get(key) ?? 0) + 1);
  try {
    return await use(await loading, fresh);
  } finally {
    modelUsers.set(key, modelUsers.get(key)! - 1);
  }
}

/** How many models are loaded now (tests). */
export function loadedModelCount(): number {
  return loadedModels.size;
}

export async function releaseModels(): Promise<void> {
  const models = [...loadedModels.values()];
  loadedModels.clear();
  await Promise.all(models.map((m) => m.then((model) => model.dispose(), () => undefined)));
}
