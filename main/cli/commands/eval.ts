import { defineCommand, requireOption } from '../command.ts';

export default defineCommand({
  name: 'eval',
  summary: 'compare a predicted mask with a ground-truth segmentation (Dice, IoU, HD95, ...)',
  usage: 'eval --pred <mask.nii[.gz]> --gt <seg.nii[.gz]> [--lesion-wise] [--dilation <n>] [--lesion-threshold <mm³>] [--json]',
  options: {
    pred: { type: 'string', valueName: 'file', description: 'predicted label map or binary mask (NIfTI)' },
    gt: { type: 'string', valueName: 'file', description: 'ground-truth label map or binary mask (NIfTI), same grid' },
    json: { type: 'boolean', description: 'print the metrics as one JSON line (with the lesion-wise figures under "lesion_wise")' },
    'lesion-wise': { type: 'boolean', description: 'also print the BraTS 2023 lesion-wise Dice and HD95 per region' },
    dilation: { type: 'string', valueName: 'n', description: 'lesion-wise: dilation iterations that merge and match lesions (default 3)' },
    'lesion-threshold': { type: 'string', valueName: 'mm³', description: 'lesion-wise: ground-truth lesions of at most this volume are left out (default 50; = voxels at 1 mm)' },
  },
  details: [
    'Label maps whose labels are all in {0, 1, 2, 4} (with a 2 or a 4 somewhere) are scored as BraTS',
    'regions WT (1+2+4), TC (1+4) and ET (4); anything else as one binary region "foreground" (label > 0).',
    'HD95 in mm as MedPy/BraTS compute it; an empty region in exactly one file gives the image diagonal.',
    'With --json the last stdout line is {"regions": {"<region>": {"dice", "iou", "sensitivity",',
    '"specificity", "hd95", "volume_ml"}}, "lesion_wise": {"dilation", "threshold_mm3", "regions": {"<region>":',
    '{"dice", "hd95", "tp", "fp", "fn", "lesions": [...]}}}}.',
    'Lesion-wise (BraTS 2023): 26-connected components; ground-truth lesions merged and matched after dilation;',
    'lesions at or below the threshold left out; unmatched predictions and missed lesions score Dice 0 and HD95 374;',
    'a region empty in both files scores Dice 1 and HD95 0.',
  ].join('\n'),
  async run(args, io) {
    const predPath = requireOption(args, 'pred');
    const gtPath = requireOption(args, 'gt');
    const { readNifti } = await import('../../core/io/nifti.ts');
    const { sameGrid } = await import('../../core/io/volume.ts');
    const { UserError } = await import('../../core/errors.ts');
    const { detectRegionKind, evaluateVolume, labelsPresent, regionsFor } = await import('../../core/metrics/index.ts');
    const { labelMapOf, describeGrid, formatMetricsTable, formatLesionWiseTable, integerOption } = await import('../../core/metrics/cli-support.ts');

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
    const dilation = integerOption(args.values.dilation, 'dilation', 3);
    const threshold = integerOption(args.values['lesion-threshold'], 'lesion-threshold', 50);
    const wantLesionWise = Boolean(args.values.json || args.values['lesion-wise']);
    const lesionWise = wantLesionWise ? (await import('../../core/metrics/lesion-wise.ts')).lesionWise(pred.labels, gt.labels, dims, spacing, regions, { dilation, threshold }) : undefined;
    const ms = performance.now() - t0;
    if (args.values.json) {
      const out: Record<string, Record<string, number>> = {};
      for (const r of regions) {
        const m = metrics[r.name]!;
        out[r.name] = { dice: m.dice, iou: m.iou, sensitivity: m.sensitivity, specificity: m.specificity, hd95: m.hd95, volume_ml: m.volumeMl };
      }
      io.stdout(`${JSON.stringify({ regions: out, lesion_wise: { dilation, threshold_mm3: threshold, regions: lesionWise } })}\n`);
    } else {
      io.stdout(formatMetricsTable(metrics, regions.map((r) => r.name), kind));
      if (lesionWise) io.stdout(formatLesionWiseTable(lesionWise, regions.map((r) => r.name), dilation, threshold));
      io.stderr(`evaluated in ${ms.toFixed(0)} ms\n`);
    }
    return 0;
  },
});
