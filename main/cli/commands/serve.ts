import { defineCommand, listOption, rangedOption, stringOption } from '../command.ts';
import { UserError } from '../../core/errors.ts';

export default defineCommand({
  name: 'serve',
  summary: 'run the workstation in a web browser (browser mode) on localhost',
  usage: 'serve [--port 8080] [--host 127.0.0.1] [--open <study>] [--export-dir <dir>] [--data-dir <dir>] [--root <dir>,…] [--token <t> | --no-token]',
  options: {
    port: { type: 'string', description: 'TCP port on localhost (0 picks a free one)', valueName: 'n' },
    host: { type: 'string', description: 'address to listen on (default 127.0.0.1)', valueName: 'addr' },
    token: { type: 'string', description: 'the access token to require (default: a random one, printed at start; on loopback too)', valueName: 't' },
    'no-token': { type: 'boolean', description: 'require no token: for tests on loopback only, never otherwise' },
    root: { type: 'string', description: 'only read studies and checkpoints under these folders (comma-separated)', valueName: 'dirs' },
    'data-dir': { type: 'string', description: 'settings, recent studies and training runs (default ~/.local/share/sam2unet-workstation)', valueName: 'dir' },
    open: { type: 'string', description: 'a study to open when the page loads (file or folder)', valueName: 'path' },
    'export-dir': { type: 'string', description: 'where exports are written (default ./sam2unet-exports)', valueName: 'dir' },
    build: { type: 'boolean', description: 'rebuild the renderer first (it is built automatically when missing)' },
  },
  details: 'Open the printed URL in a browser: it carries the token, which the browser then keeps in an HttpOnly cookie. Stop with Ctrl-C.',
  async run(args, io) {
    const { resolve } = await import('node:path');
    const { fileURLToPath } = await import('node:url');
    const { existsSync } = await import('node:fs');
    const { startWebServer } = await import('../../web/server.ts');
    const port = rangedOption(args, 'port', { integer: true, min: 0, max: 65535 }, 8080);
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const open = stringOption(args, 'open');
    if (open !== undefined && !existsSync(open)) throw new UserError(`${open}: no such file or folder`);
    const rendererDir = resolve(root, 'renderer/dist');
    const { rendererBuilt } = await import('../../core/renderer-files.ts');
    if (!(await rendererBuilt(rendererDir)) || args.values.build) {
      io.stderr('sam2unet: building the renderer (vite) …\n');
      try {
        const { build } = await import('vite');
        await build({ configFile: resolve(root, 'renderer/vite.config.ts'), logLevel: 'error' });
      } catch (err) {
        throw new UserError(`the renderer is not built and building it failed (${err instanceof Error ? err.message : String(err)}); run npm run build:renderer`);
      }
    }
    const { userDataDir } = await import('../../core/settings.ts');
    const token = stringOption(args, 'token');
    if (token !== undefined && !/^[A-Za-z0-9_-]{16,}$/.test(token)) throw new UserError('--token must be at least 16 letters, digits, "_" or "-"');
    const noToken = args.values['no-token'] === true;
    if (noToken && token !== undefined) throw new UserError('--no-token and --token exclude each other');
    const { isLoopback } = await import('../../web/server.ts');
    if (noToken && !isLoopback(stringOption(args, 'host') ?? '127.0.0.1')) throw new UserError('--no-token is only for tests on loopback (127.0.0.1, ::1, localhost)');
    const roots = listOption(args, 'root');
    for (const dir of roots ?? []) if (!existsSync(dir)) throw new UserError(`--root ${dir}: no such folder`);
    const server = await startWebServer({
      port,
      host: stringOption(args, 'host'),
      rendererDir,
      exportDir: resolve(stringOption(args, 'export-dir') ?? 'sam2unet-exports'),
      dataDir: resolve(stringOption(args, 'data-dir') ?? userDataDir()),
      ...(roots ? { roots } : {}),
      ...(token ? { token } : {}),
      ...(noToken ? { noToken } : {}),
      modelsDir: resolve(root, 'models'),
      log: (line) => io.stderr(`${line}\n`),
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') throw new UserError(`port ${port} is in use; choose another with --port`);
      throw err;
    });
    const url = new URL(server.url);
    if (open) url.searchParams.set('open', resolve(open));
    io.stdout(`listening on ${server.origin}\n`);
    if (server.token) io.stdout(`token ${server.token}\n`);
    else io.stderr('sam2unet: WARNING: --no-token: NO TOKEN IS REQUIRED; any local process or user can drive this server and read your files. For tests only.\n');
    io.stdout(`open ${url.href}\n`);
    io.stderr('sam2unet: serving; press Ctrl-C to stop\n');
    await new Promise<void>((done) => {
      const stop = () => void server.close().then(done);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
});
