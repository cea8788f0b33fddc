import { defineCommand } from '../command.ts';
import { UserError } from '../../core/errors.ts';
import type { Study } from '../../core/io/study.ts';
import type { Volume } from '../../core/io/volume.ts';

export interface SeriesInfo {
  id: string;
  description: string;
  modality: string;
  dims: number[];
  spacing: number[];
  /** LPS mm */
  origin: number[];
  /** 9 numbers, LPS, row-major, column c = index axis c */
  direction: number[];
  dtype: string;
  /** of the real values (after slope/intercept) */
  min: number;
  max: number;
  mean: number;
}

export interface StudyInfo {
  name: string;
  kind: string;
  /** sequence name → series id */
  sequences: Record<string, string>;
  seg?: string;
}

export function seriesInfo(volume: Volume): SeriesInfo {
  const { geometry, meta } = volume;
  const { min, max, mean } = volume.stats();
  return {
    id: meta.id,
    description: meta.description,
    modality: meta.modality,
    dims: [...geometry.dims],
    spacing: [...geometry.spacing],
    origin: [...geometry.origin],
    direction: [...geometry.direction],
    dtype: volume.dtype,
    min,
    max,
    mean,
  };
}

export function studyInfo(study: Study): StudyInfo {
  const sequences: Record<string, string> = {};
  for (const [name, volume] of Object.entries(study.sequences)) sequences[name] = volume.meta.id;
  return { name: study.name, kind: study.kind, sequences, ...(study.seg ? { seg: study.seg.meta.id } : {}) };
}

const round = (v: number, digits = 4) => String(+v.toFixed(digits));

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export default defineCommand({
  name: 'info',
  summary: 'describe the images in a NIfTI file, BraTS case folder or DICOM files/folder',
  usage: 'info <path> [--json]',
  options: {
    json: { type: 'boolean', description: 'print machine-readable JSON on stdout' },
  },
  details:
    'JSON: {"series": [{id, description, modality, dims, spacing, origin, direction, dtype, min, max, mean}],\n' +
    ' "study": {name, kind: "brats", sequences: {t1: <id>, …}, seg: <id>}}  ("study" only when a BraTS case is recognised;\n' +
    ' "studies" lists every study when there are several). Geometry is LPS; direction is row-major, column c = axis c;\n' +
    ' min/max/mean are of the values after rescaling.',
  async run(args, io) {
    if (args.positionals.length !== 1) throw new UserError('info takes exactly one path (see --help)');
    const { openPath, listSeries } = await import('../../core/io/open.ts');
    const { studies, notes } = await openPath(args.positionals[0]!);
    for (const note of notes) io.stderr(`note: ${note}\n`);
    const series = listSeries(studies).map((s) => seriesInfo(s.volume));
    const brats = studies.find((s) => s.kind === 'brats');
    if (args.values.json) {
      const out: Record<string, unknown> = { series };
      if (brats) out.study = studyInfo(brats);
      if (studies.length > 1) out.studies = studies.map(studyInfo);
      io.stdout(`${JSON.stringify(out, null, 2)}\n`);
      return 0;
    }
    const rows = [['ID', 'DESCRIPTION', 'MODALITY', 'DIMS', 'SPACING (mm)', 'DTYPE', 'MIN', 'MAX', 'MEAN']];
    for (const s of series) {
      rows.push([
        s.id, s.description, s.modality || '-', s.dims.join('×'), s.spacing.map((v) => round(v)).join('×'),
        s.dtype, round(s.min), round(s.max), round(s.mean),
      ]);
    }
    io.stdout(table(rows));
    for (const study of studies.map(studyInfo)) {
      const parts = Object.entries(study.sequences).map(([name, id]) => `${name}=${id}`);
      if (study.seg) parts.push(`seg=${study.seg}`);
      io.stdout(`\n${study.kind} study ${study.name}: ${parts.join(', ')}\n`);
    }
    return 0;
  },
});
