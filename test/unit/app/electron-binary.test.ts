import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ES module of the launcher, no types
import { ensureElectronBinary } from '../../../scripts/electron-binary.mjs';

const dir = mkdtempSync(join(tmpdir(), 'sam2unet-electron-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ensure = ensureElectronBinary as (electronDir: string, log?: (line: string) => void) => string | null;

describe('npm start: the Electron binary is fetched on first start', () => {
  it('does nothing when the binary is there', () => {
    const present = join(dir, 'present');
    mkdirSync(join(present, 'dist'), { recursive: true });
    expect(ensure(present, () => {})).toBeNull();
  });

  it('runs install.js when it is missing, and accepts what it downloaded', () => {
    const fetched = join(dir, 'fetched');
    mkdirSync(fetched);
    writeFileSync(join(fetched, 'install.js'), "require('fs').mkdirSync(require('path').join(__dirname, 'dist'));");
    const lines: string[] = [];
    expect(ensure(fetched, (line) => lines.push(line))).toBeNull();
    expect(lines[0]).toMatch(/downloading it/);
  });

  it("says clearly what works offline when the download fails (this machine's real install.js)", () => {
    const real = resolve(import.meta.dirname, '../../../node_modules/electron');
    const copy = join(dir, 'offline');
    mkdirSync(copy);
    // Electron's own installer, run where its download cannot succeed (no network here; an
    // unresolvable mirror elsewhere), so the test never downloads anything
    writeFileSync(join(copy, 'install.js'), `process.env.ELECTRON_MIRROR = 'http://electron-mirror.invalid/'; process.chdir(${JSON.stringify(real)}); require(${JSON.stringify(join(real, 'install.js'))});`);
    const message = ensure(copy, () => {});
    expect(message).toMatch(/could not download the Electron binary/);
    expect(message).toMatch(/offline/);
    expect(message).toMatch(/npm run web/);
  }, 120_000);
});
