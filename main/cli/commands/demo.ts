import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../../core/errors.ts';
import { defineCommand, rangedOption, SEED_RANGE, stringOption } from '../command.ts';

/**
 * The README's first command: a BraTS-like study made by the project's own phantom generator,
 * segmented by the bundled default model, with mask, metrics and report written to disk. Every
 * step is an ordinary command (phantom, segment), run the same way a user would.
 */
export default defineCommand({
  name: 'demo',
  summary: 'make a BraTS-like demo study, segment it with the bundled model, write mask, metrics and report',
  usage: 'demo [--out demo-output] [--seed 2026] [--study <path>] [--device auto]',
  options: {
    out: { type: 'string', description: 'output folder (default ./demo-output)', valueName: 'dir' },
    seed: { type: 'string', description: 'seed of the generated study (default 2026)', valueName: 'S' },
    study: { type: 'string', description: 'segment this study instead of a generated one', valueName: 'path' },
    device: { type: 'string', description: 'execution provider: auto (default), cpu, cuda, dml, coreml, webgpu', valueName: 'device' },
    checkpoint: { type: 'string', description: 'another SAM2-UNet checkpoint instead of the bundled model', valueName: 'file' },
  },
  async run(args, io) {
    const [{ runCommand }, { default: phantom }, { default: segment }] = await Promise.all([import('../run.ts'), import('./phantom.ts'), import('./segment.ts')]);
    const out = resolve(stringOption(args, 'out') ?? 'demo-output');
    const seed = rangedOption(args, 'seed', SEED_RANGE, 2026);
    let study = stringOption(args, 'study');
    if (!study) {
      const studyRoot = join(out, 'study');
      const existing = existsSync(studyRoot) ? readdirSync(studyRoot).filter((d) => d.startsWith('Phantom_')) : [];
      if (existing.length === 0) {
        io.stderr(`demo: generating a BraTS-like study (seed ${seed}) in ${studyRoot}\n`);
        const status = await runCommand(phantom, ['--out', studyRoot, '--cases', '1', '--seed', String(seed)], io);
        if (status !== 0) return status;
      }
      study = join(studyRoot, existing[0] ?? readdirSync(studyRoot).find((d) => d.startsWith('Phantom_'))!);
    }
    if (!existsSync(study)) throw new UserError(`demo: study ${study} does not exist`);
    io.stderr(`demo: segmenting ${study}\n`);
    const segmentArgs = [study, '--out', out];
    const checkpoint = stringOption(args, 'checkpoint');
    if (checkpoint) segmentArgs.push('--checkpoint', checkpoint);
    const device = stringOption(args, 'device');
    if (device) segmentArgs.push('--device', device);
    const status = await runCommand(segment, segmentArgs, io);
    if (status === 0) io.stderr(`demo: mask, metrics.json, metrics.csv, report.html and report.pdf are in ${out}\n`);
    return status;
  },
});
