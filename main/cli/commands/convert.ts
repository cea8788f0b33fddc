import { defineCommand, stringOption } from '../command.ts';
import { UserError } from '../../core/errors.ts';

export default defineCommand({
  name: 'convert',
  summary: 'convert a DICOM series, NIfTI file or BraTS sequence to NIfTI (.nii or .nii.gz)',
  usage: 'convert <input> <output.nii[.gz]> [--series ID]',
  options: {
    series: { type: 'string', description: 'which series to write when the input holds several (ids from `sam2unet info`)', valueName: 'id' },
  },
  details:
    'Writes the values after rescaling: float32 when the input has a non-trivial slope/intercept, else the stored\n' +
    'integer type; the geometry goes into both sform and qform. A multi-frame DICOM file becomes one 3-D volume.',
  async run(args, io) {
    if (args.positionals.length !== 2) throw new UserError('convert takes an input path and an output .nii/.nii.gz path (see --help)');
    const [input, output] = args.positionals as [string, string];
    const { isNiftiPath, writeNifti } = await import('../../core/io/nifti.ts');
    if (!isNiftiPath(output)) throw new UserError(`${output}: the output must end in .nii or .nii.gz`);
    const { resolve } = await import('node:path');
    if (resolve(input) === resolve(output)) throw new UserError(`${output}: refusing to overwrite the input`);
    const { openPath, listSeries } = await import('../../core/io/open.ts');
    const { studies, notes } = await openPath(input);
    for (const note of notes) io.stderr(`note: ${note}\n`);
    const series = listSeries(studies);
    const wanted = stringOption(args, 'series');
    const ids = series.map((s) => s.volume.meta.id);
    let chosen = series[0]!;
    if (wanted !== undefined) {
      const match = series.find((s) => s.volume.meta.id === wanted);
      if (!match) throw new UserError(`no series "${wanted}" in ${input}; series: ${ids.join(', ')}`);
      chosen = match;
    } else if (series.length > 1) {
      throw new UserError(`${input} holds ${series.length} series; choose one with --series: ${ids.join(', ')}`);
    }
    const volume = chosen.volume;
    await writeNifti(output, volume, { dtype: volume.isScaled ? 'float32' : volume.dtype });
    io.stderr(`wrote ${output} (${volume.dims.join('×')} ${volume.isScaled ? 'float32' : volume.dtype}) from ${volume.meta.id}\n`);
    return 0;
  },
});
