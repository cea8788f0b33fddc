import { defineCommand, requireOption } from '../command.ts';
import { DEFAULT_MIN_LESION_ML, type TumourDescription } from '../../core/metrics/describe.ts';
import { SLICE_NUMBERING, sliceNumber } from '../../core/conventions.ts';

const f1 = (v: number): string => v.toFixed(1);
const f2 = (v: number): string => v.toFixed(2);

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
}

export function formatDescription(d: TumourDescription): string {
  const lines = ['Regions', ...table([['Region', 'Volume (ml)', 'Voxels'], ...Object.entries(d.regions).map(([name, r]) => [name, f2(r.volume_ml), String(r.voxels)])]), ''];
  lines.push(`Lesions (whole-tumour components ≥ ${DEFAULT_MIN_LESION_ML} ml, 26-connected): ${d.lesions.length}`);
  if (d.lesions.length) {
    lines.push(
      ...table([
        ['#', 'Volume (ml)', 'Centroid LPS (mm)', 'Max diam. (mm)', 'ET (ml)', 'RANO slice', 'Long (mm)', 'Perp. (mm)', 'Product (mm²)', 'Measurable'],
        ...d.lesions.map((l, i) => [
          String(i + 1),
          f2(l.volume_ml),
          l.centroid_lps.map(f1).join(', '),
          f1(l.max_diameter_mm),
          f2(l.et_volume_ml),
          l.rano.slice === null ? '-' : String(sliceNumber(l.rano.slice)),
          f1(l.rano.long_mm),
          f1(l.rano.perp_mm),
          f1(l.rano.product_mm2),
          l.rano.measurable ? 'yes' : 'no',
        ]),
      ]),
    );
  }
  const lat = d.laterality;
  lines.push(
    '',
    `RANO sum of products: ${f1(d.rano_sum_products_mm2)} mm² over ${Math.min(d.measurable_lesions, 5)} of ${d.measurable_lesions} measurable lesion(s)`,
    `Multifocal: ${d.multifocal.foci > 1 ? 'yes' : 'no'}, ${d.multifocal.foci} ${d.multifocal.foci === 1 ? 'focus' : 'foci'}${d.multifocal.foci > 1 ? `, largest distance between foci ${f1(d.multifocal.largest_distance_mm)} mm` : ''}`,
    `Laterality: ${f1(lat.left_pct)} % left, ${f1(lat.right_pct)} % right${lat.crosses_midline ? ', crosses the midline' : ''} ` +
      `(${lat.method === 'image-symmetry' ? 'mid-sagittal plane fitted to the images' : 'sagittal plane of the patient axes through the grid centre; give --study for the brain\'s own midline'})`,
    `${SLICE_NUMBERING} The JSON keeps 0-based indices.`,
    '',
  );
  return lines.join('\n');
}

export default defineCommand({
  name: 'measure',
  summary: 'describe a tumour label map without ground truth: volumes, lesions, RANO diameters, multifocality, laterality',
  usage: 'measure --mask <labels.nii[.gz] | DICOM SEG> [--study <study>] [--json]',
  options: {
    mask: { type: 'string', valueName: 'file', description: 'BraTS label map or binary mask (NIfTI or DICOM SEG)' },
    study: { type: 'string', valueName: 'path', description: "the study's images (BraTS folder, NIfTI or DICOM), to find the brain's mid-sagittal plane" },
    json: { type: 'boolean', description: 'print the description as one JSON line' },
  },
  details: [
    'Regions NCR (1), ED (2), ET (4), TC (1+4), WT (1+2+4); a binary mask is one region, WT (label > 0).',
    'Lesions are the 26-connected whole-tumour components of at least 0.1 ml, largest first. RANO: on the axial',
    'slice where the enhancing part (a binary mask: the lesion) has its longest in-plane diameter, that diameter and',
    'the longest one perpendicular to it; measurable when both are at least 10 mm. The sum of products is over up to',
    'five measurable lesions. Components closer than 5 mm are one focus. Laterality is relative to the mid-sagittal',
    'plane fitted to the left-right symmetry of the --study images, or without them the patient axes (method says which).',
    'With --json: {"regions": {"<region>": {"volume_ml", "voxels"}}, "lesions": [{"volume_ml", "centroid_lps",',
    '"max_diameter_mm", "et_volume_ml", "rano": {"slice", "long_mm", "perp_mm", "product_mm2", "measurable"}}],',
    '"rano_sum_products_mm2", "measurable_lesions", "multifocal": {"foci", "largest_distance_mm"},',
    '"laterality": {"left_pct", "right_pct", "crosses_midline", "method"}} (slices 0-based, LPS mm).',
  ].join('\n'),
  async run(args, io) {
    const maskPath = requireOption(args, 'mask');
    const studyPath = typeof args.values.study === 'string' ? args.values.study : undefined;
    const { describeMaskFile } = await import('../../core/metrics/describe-input.ts');
    const t0 = performance.now();
    const { description, notes } = await describeMaskFile(maskPath, studyPath);
    for (const note of notes) io.stderr(`note: ${note}\n`);
    if (args.values.json) io.stdout(`${JSON.stringify(description)}\n`);
    else {
      io.stdout(formatDescription(description));
      io.stderr(`measured in ${(performance.now() - t0).toFixed(0)} ms\n`);
    }
    return 0;
  },
});
