// Worker entry when the sources run: registers tsx's loader so the TypeScript module named in
// workerData.entry runs without a build step (as bin/sam2unet.mjs does for the main thread). The
// compiled app starts its worker bundles directly instead (util/worker.ts, scripts/build-app.mjs).
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
