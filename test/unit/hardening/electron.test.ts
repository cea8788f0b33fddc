/**
 * Findings 8 and 13 of issue 14: `handleDrop(app://renderer, '/')` made the whole disk readable;
 * navigation and window-open handlers were on the main window only; no global sandbox, no
 * permission check handler, no fuses. The handlers are called directly (no Electron), as the
 * other test/unit/app tests do; main.ts is checked to install them on every web contents.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAppWiring } from '../../../main/app/ipc.ts';
import { dropRefusal, guardWebContents, navigationAllowed, refusePermissionCheck, refusePermissionRequest } from '../../../main/app/guards.ts';
import { fakePorts } from '../app/fakes.ts';

const APP = 'app://renderer/index.html';
const tmp = mkdtempSync(join(tmpdir(), 'electron-hardening-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const home = join(tmp, 'home', 'user');
const study = join(home, 'studies', 'case1');
mkdirSync(study, { recursive: true });
symlinkSync('/', join(home, 'link-to-root'));

function wiring() {
  const lines: string[] = [];
  const w = createAppWiring({ ports: fakePorts(), log: (l) => lines.push(l), showSaveDialog: async () => null, showOpenDialog: async () => null, homeDir: home, settingsFile: join(tmp, 'settings.json') });
  return { ...w, lines };
}

describe('the drop channel grants exactly what was dropped', () => {
  it.each([
    ['/', /root of a file system/],
    [join(home, 'link-to-root'), /root of a file system/],
    [home, /home folder itself/],
    [join(tmp, 'home'), /users' home folders/],
    ['/etc', /system folder/],
    ['/usr', /system folder/],
    ['/dev/null', /neither a file nor a folder/],
    [join(tmp, 'missing'), /does not exist/],
    ['relative/path', /not an absolute path/],
  ])('refuses %s', async (path, reason) => {
    const w = wiring();
    const reply = await w.handleDrop(APP, path);
    expect(reply.ok).toBe(false);
    expect(reply.ok ? '' : reply.error.message).toMatch(reason);
    expect(w.roots.allows('/etc/passwd')).toBe(false);
    expect(w.lines.join('\n')).toMatch(/refused a drop/);
  });

  it('a dropped study folder is granted, and nothing beside it', async () => {
    const w = wiring();
    expect(await w.handleDrop(APP, study)).toEqual({ ok: true, value: { path: study } });
    expect(w.roots.allows(join(study, 'flair.nii.gz'))).toBe(true);
    expect(w.roots.allows(join(home, 'studies', 'case2'))).toBe(false);
    expect(w.roots.allows(home)).toBe(false);
  });

  it('the real home folder is refused too (no injected home)', () => {
    expect(dropRefusal(homedir())).toMatch(/home folder itself|system folder/);
  });
});

describe('every web contents is guarded', () => {
  function fakeContents() {
    const listeners = new Map<string, (event: { preventDefault(): void; url?: string }, url?: string) => void>();
    let openHandler: ((d: { url: string }) => { action: string }) | undefined;
    return {
      listeners,
      open: (url: string) => openHandler!({ url }),
      setWindowOpenHandler: (h: (d: { url: string }) => { action: 'deny' }) => void (openHandler = h),
      on: (event: string, l: (event: { preventDefault(): void; url?: string }, url?: string) => void) => void listeners.set(event, l),
      fire(event: string, url?: string) {
        let prevented = false;
        listeners.get(event)!({ preventDefault: () => void (prevented = true), url }, url);
        return prevented;
      },
    };
  }

  it('window-open is denied, navigation away from the renderer and webviews are prevented', () => {
    const contents = fakeContents();
    const log: string[] = [];
    guardWebContents(contents as never, (l) => log.push(l));
    expect(contents.open('https://evil.example/')).toEqual({ action: 'deny' });
    for (const event of ['will-navigate', 'will-frame-navigate', 'will-redirect']) {
      expect(contents.fire(event, 'https://evil.example/'), event).toBe(true);
      expect(contents.fire(event, 'file:///etc/passwd'), event).toBe(true);
      expect(contents.fire(event, 'app://renderer/index.html'), event).toBe(false);
    }
    expect(contents.fire('will-attach-webview')).toBe(true);
    expect(log.join('\n')).toMatch(/refused navigation to https:\/\/evil\.example/);
    expect(navigationAllowed('app://renderer.evil.example/')).toBe(false);
  });

  it('no permission is granted or reported as granted', () => {
    let granted: boolean | undefined;
    refusePermissionRequest(null, 'media', (g) => void (granted = g));
    expect(granted).toBe(false);
    expect(refusePermissionCheck()).toBe(false);
  });

  it('main.ts enables the global sandbox, guards every web contents and installs the permission check handler', () => {
    const source = readFileSync(resolve('main/app/main.ts'), 'utf8');
    expect(source).toMatch(/app\.enableSandbox\(\)/);
    expect(source).toMatch(/app\.on\('web-contents-created', \(_event, contents\) => guardWebContents\(contents, log\)\)/);
    expect(source).toMatch(/setPermissionCheckHandler\(refusePermissionCheck\)/);
    expect(source).toMatch(/setPermissionRequestHandler\(refusePermissionRequest\)/);
    // the sandbox call comes before the app is ready
    expect(source.indexOf('app.enableSandbox()')).toBeLessThan(source.indexOf('await app.whenReady()'));
  });
});

describe('fuses set at packaging', () => {
  it('electron-builder.yml flips the fuses', () => {
    const text = readFileSync(resolve('electron-builder.yml'), 'utf8');
    expect(text).toMatch(/^asar: true$/m);
    // the block's "  key: true|false" lines (js-yaml is not a dependency of ours)
    const block = /^electronFuses:\n((?: {2}\w+: (?:true|false)\n)+)/m.exec(text)?.[1] ?? '';
    const fuses = Object.fromEntries([...block.matchAll(/^ {2}(\w+): (true|false)$/gm)].map((m) => [m[1], m[2] === 'true']));
    expect(fuses).toMatchObject({
      runAsNode: false,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
      grantFileProtocolExtraPrivileges: false,
    });
  });
});
