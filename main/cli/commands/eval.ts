import { defineCommand, requireOption } from '../command.ts';

export default defineCommand({
  name: 'eval',
  summary: 'compare a predicted mask with a ground-truth segmentation (Dice, IoU, HD95, ...)',
  usage: 'eval --pred <mask.nii[.gz]> --gt <seg.nii[.gz]> [--json]',
  options: {
    pred: { type: 'string', valueName: 'file', description: 'predicted label map or binary mask (NIfTI)' },
    gt: { type: 'string', valueName: 'file', description: 'ground-truth label map or binary mask (NIfTI), same grid' },
    json: { type: 'boolean', description: 'print the metrics as one JSON line' },
  },
  details: [
    'Label maps whose labels are all in {0, 1, 2, 4} (with a 2 or a 4 somewhere) are scored as BraTS',
    'regions WT (1+2+4), TC (1+4) and ET (4); anything else as one binary region "foreground" (label > 0).',
    'HD95 in mm as MedPy/BraTS compute it; an empty region in exactly one file gives the image diagonal.',
    'With --json the last stdout line is {"regions": {"<region>": {"dice", "iou", "sensitivity",',
    '"specificity", "hd95", "volume_ml"}}}.',
  ].join('\n'),
  async run(args, io) {
    const predPath = requireOption(args, 'pred');
    const gtPath = requireOption(args, 'gt');
    const { readNifti } = await import('../../core/io/nifti.ts');
    const { sameGrid } = await import('../../core/io/volume.ts');
    const { UserError } = await import('../../core/errors.ts');
    const { detectRegionKind, evaluateVolume, labelsPresent, regionsFor } = await import('../../core/metrics/index.ts');
    const { labelMapOf, describeGrid, formatMetricsTable } = await import('../../core/metrics/cli-support.ts');

    const [predImage, gtImage] = await Promise.all([readNifti(predPath), readNifti(gtPath)]);
    const pred = labelMapOf(predImage.volumes, predPath);
    const gt = labelMapOf(gtImage.volumes, gtPath);
    if (!sameGrid(pred.volume.geometry, gt.volume.geometry)) {
      throw new UserError(
        `--pred and --gt are on different grids: ${predPath} is ${describeGrid(pred.volume.geometry)}, ${gtPath} is ${describeGrid(gt.volume.geometry)}`,
      );
    }
    const kind = detectRegionKind(labelsPresent(pred.labels), labelsPresent(gt.labels));
    const regions = regionsFor(kind);
    const { dims, spacing } = gt.volume.geometry;
    const t0 = performance.now();
    const metrics = evaluateVolume(pred.labels, gt.labels, dims, spacing, regions);
    const ms = performance.now() - t0;
    if (args.values.json) {
      const out: Record<string, Record<string, number>> = {};
      for (const r of regions) {
        const m = metrics[r.name]!;
        out[r.name] = { dice: m.dice, iou: m.iou, sensitivity: m.sensitivity, specificity: m.specificity, hd95: m.hd95, volume_ml: m.volumeMl };
      }
      io.stdout(`${JSON.stringify({ regions: out })}\n`);
    } else {
      io.stdout(formatMetricsTable(metrics, regions.map((r) => r.name), kind));
      io.stderr(`evaluated in ${ms.toFixed(0)} ms\n`);
    }
    return 0;
  },
});
