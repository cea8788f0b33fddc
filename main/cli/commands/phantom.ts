import { defineCommand, rangedOption, SEED_RANGE, requireOption, stringOption } from '../command.ts';
import { UserError } from '../../core/errors.ts';

function parseSize(raw: string | undefined): [number, number, number] | undefined {
  if (raw === undefined) return undefined;
  const parts = raw.split(/[,x×]/).map((p) => Number(p.trim()));
  if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n) || n < 16 || n > 1024)) {
    throw new UserError(`--size expects three integers 16…1024 like 240,240,155, got "${raw}"`);
  }
  return parts as [number, number, number];
}

export default defineCommand({
  name: 'phantom',
  summary: 'generate seeded BraTS-like phantom studies (t1, t1ce, t2, flair + ground truth) as NIfTI',
  usage: 'phantom --out <dir> [--cases N] [--seed S] [--size 240,240,155] [--variety classic|broad|focal] [--json]',
  options: {
    out: { type: 'string', description: 'output folder (one sub-folder per case)', valueName: 'dir' },
    cases: { type: 'string', description: 'number of cases (default 1)', valueName: 'N' },
    seed: { type: 'string', description: 'random seed, an integer (default 1); same seed → byte-identical files', valueName: 'S' },
    first: { type: 'string', description: 'index of the first case (default 1 → Phantom_001)', valueName: 'I' },
    size: { type: 'string', description: 'grid x,y,z (default 240,240,155; the field of view stays 240×240×155 mm)', valueName: 'x,y,z' },
    variety: { type: 'string', description: 'classic (default: one hemispheric lesion, calibrated contrasts), broad (1–100 ml anywhere, 1–3 foci, wider contrast/noise/bias) or focal (0.5–10 ml high in the cerebrum, by the midline or on the convexity; broad\'s ranges)', valueName: 'name' },
    json: { type: 'boolean', description: 'print a JSON summary on stdout' },
  },
  details: [
    'Writes <dir>/Phantom_NNN/Phantom_NNN_{t1,t1ce,t2,flair,seg}.nii.gz with BraTS 2020 conventions:',
    'int16 sequences, uint8 labels (1 necrotic/non-enhancing core, 2 edema, 4 enhancing tumour),',
    'the BraTS affine (RAS diag(-1,-1,1), origin 0,239,0). About 20% of cases have no enhancing tumour',
    'and about a third of the enhancing ones no necrotic core. Case i depends only on (seed, i).',
  ].join('\n'),
  async run(args, io) {
    const out = requireOption(args, 'out');
    const cases = rangedOption(args, 'cases', { integer: true, min: 1, max: 100000 }, 1);
    const seed = rangedOption(args, 'seed', SEED_RANGE, 1);
    const first = rangedOption(args, 'first', { integer: true, min: 0, max: 999999 }, 1);
    const size = parseSize(stringOption(args, 'size'));
    const { writePhantoms, PHANTOM_VARIETIES } = await import('../../core/phantom/index.ts');
    const variety = stringOption(args, 'variety') ?? 'classic';
    if (!(PHANTOM_VARIETIES as readonly string[]).includes(variety)) throw new UserError(`--variety must be one of ${PHANTOM_VARIETIES.join(', ')}, got "${variety}"`);
    const written = await writePhantoms({
      out,
      cases,
      seed,
      first,
      size,
      variety: variety as (typeof PHANTOM_VARIETIES)[number],
      onCase: (done, total, info) => {
        const labels = `ET ${info.enhancing ? 'yes' : 'no'}, necrosis ${info.necrosis ? 'yes' : 'no'}, WT ${info.labelCounts[1] + info.labelCounts[2] + info.labelCounts[4]} voxels (${info.wholeTumourMl.toFixed(1)} ml), ${info.foci} foci`;
        io.stderr(`[${done}/${total}] ${info.name}: ${labels}\n`);
      },
    });
    if (args.values.json) {
      io.stdout(`${JSON.stringify({ out, seed, cases: written }, null, 2)}\n`);
    } else {
      io.stdout(`${written.length} case${written.length === 1 ? '' : 's'} written to ${out}\n`);
    }
    return 0;
  },
});
