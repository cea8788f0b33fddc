/**
 * The PACS services behind api.ts without a PACS: connections are saved without their secrets,
 * a saved secret is only ever sent to the server it was entered for (a page cannot test a saved
 * connection against another address to learn its password), and moving a connection to another
 * server forgets its secret.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SettingsStore } from '../../../main/core/settings.ts';
import { MemorySecretStore } from '../../../main/core/pacs/connection.ts';
import { PacsService } from '../../../main/core/pacs/service.ts';

const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-pacs-service-'));
const seen: { server: string; authorization?: string }[] = [];
const servers: Server[] = [];
const origins: string[] = [];

beforeAll(async () => {
  for (const name of ['pacs', 'elsewhere']) {
    const server = createServer((request, response) => {
      seen.push({ server: name, ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}) });
      response.writeHead(200, { 'Content-Type': 'application/dicom+json' }).end('[]');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    origins.push(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  }
});
afterAll(async () => {
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
  rmSync(tmp, { recursive: true, force: true });
});

describe('PACS connections and their secrets', () => {
  it('keeps secrets out of settings.json and sends them only to their own server', async () => {
    const settings = new SettingsStore(join(tmp, 'settings.json'));
    const pacs = new PacsService({ settings, secrets: new MemorySecretStore(), emit: () => undefined });
    const saved = await pacs.save({ name: 'PACS', url: `${origins[0]}/dicom-web/`, auth: 'basic', user: 'jane', secret: 's3cret-pw' });
    expect(saved).toMatchObject({ url: `${origins[0]}/dicom-web`, auth: 'basic', user: 'jane', hasSecret: true });
    expect(readFileSync(join(tmp, 'settings.json'), 'utf8')).not.toContain('s3cret-pw');

    const ok = await pacs.test({ id: saved.id });
    expect(ok.ok).toBe(true);
    expect(seen.at(-1)).toEqual({ server: 'pacs', authorization: `Basic ${Buffer.from('jane:s3cret-pw').toString('base64')}` });

    // the saved connection tested against another server: its secret is not used
    const count = seen.length;
    const elsewhere = await pacs.test({ id: saved.id, url: `${origins[1]}/dicom-web`, auth: 'basic', user: 'jane' });
    expect(elsewhere).toMatchObject({ ok: false });
    expect(elsewhere.message).toMatch(/no password saved/);
    expect(seen.slice(count).filter((s) => s.authorization)).toEqual([]);
    // the same server with the form's fields (edited, not saved) may use it
    expect((await pacs.test({ id: saved.id, url: `${origins[0]}/dicom-web`, auth: 'basic', user: 'jane' })).ok).toBe(true);

    // moved to another server without a new password: the old one is forgotten
    const moved = await pacs.save({ id: saved.id, name: 'PACS', url: `${origins[1]}/dicom-web`, auth: 'basic', user: 'jane' });
    expect(moved.hasSecret).toBe(false);
    expect(await pacs.delete(saved.id)).toEqual({ deleted: true });
    expect(await pacs.connections()).toEqual([]);
  });

  it('refuses a connection that cannot work, with the reason', async () => {
    const pacs = new PacsService({ settings: new SettingsStore(), emit: () => undefined });
    await expect(pacs.save({ name: 'x', url: 'ftp://pacs/dicom-web', auth: 'none' })).rejects.toThrow(/http:\/\/ or https:\/\//);
    await expect(pacs.save({ name: 'x', url: 'http://pacs/dicom-web', auth: 'basic' })).rejects.toThrow(/needs a user/);
    await expect(pacs.open({ connectionId: 'nope', studyUid: '1.2', jobId: 'j' })).rejects.toThrow(/needs a data folder/);
  });
});
