// Builds the renderer once before the browser tests: test files run in parallel, and two Vite
// builds writing renderer/dist at once could serve one of them half-written files.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';

export default async function setup(): Promise<void> {
  const root = resolve(import.meta.dirname, '../..');
  mkdirSync(resolve(root, 'test-output/e2e'), { recursive: true });
  const { build } = await import('vite');
  await build({ configFile: resolve(root, 'renderer/vite.config.ts'), logLevel: 'error' });
}
