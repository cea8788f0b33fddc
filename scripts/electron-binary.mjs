// Electron's binary is not part of `npm ci` here (install scripts are off, and its download host
// may be unreachable): it is fetched the first time the desktop app starts.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Makes sure `electronDir/dist` exists, running Electron's own install.js when it does not.
 * Returns null when the binary is there, else the message to show (what failed and what works
 * without it).
 */
export function ensureElectronBinary(electronDir, log = (line) => console.error(line)) {
  if (existsSync(join(electronDir, 'dist'))) return null;
  log('Electron binary missing: downloading it (node node_modules/electron/install.js) …');
  const install = spawnSync(process.execPath, [join(electronDir, 'install.js')], { stdio: ['ignore', 'inherit', 'pipe'], cwd: electronDir, encoding: 'utf8', timeout: 10 * 60_000 });
  if (install.status === 0 && existsSync(join(electronDir, 'dist'))) return null;
  const reason = (install.stderr ?? '').split('\n').find((line) => /Error|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|fetch failed/.test(line))?.trim();
  return [
    `could not download the Electron binary${reason ? ` (${reason})` : ''}: this machine looks offline or cannot reach Electron's download host.`,
    'Everything else works without it: the browser mode (npm run web, then open http://127.0.0.1:8080) and the sam2unet command line.',
    'With network access, run npm start again (or node node_modules/electron/install.js).',
  ].join('\n');
}
