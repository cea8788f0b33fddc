/**
 * One export path (issue 13): for the same study and model, the CLI's `segment --dicom-seg` and
 * the app's Export (the service behind the Electron and browser pages) write the same NIfTI and
 * the same DICOM SEG, apart from the UIDs and times a new object must get.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it, vi } from 'vitest';
import dcmjs from 'dcmjs';
import { main } from '../../../main/cli/index.ts';
import type { ApiEvent } from '../../../main/core/api.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';

const shared = resolve(process.cwd(), '../shared');
const series = join(shared, 'data/phantoms/BraTS20_Training_001_flair_dicom');
const out = mkdtempSync(join(tmpdir(), 'sam2unet-export-parity-'));
process.env.SAM2UNET_CACHE = join(out, 'cache');
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** What a new SEG object must make new: its identity and the time it was made. */
const FRESH = new Set(['SOPInstanceUID', 'SeriesInstanceUID', 'DimensionOrganizationUID', 'MediaStorageSOPInstanceUID', 'InstanceCreationDate', 'InstanceCreationTime', 'SeriesDate', 'SeriesTime', 'ContentDate', 'ContentTime']);

function comparable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(comparable);
  if (value instanceof ArrayBuffer) return Buffer.from(value).toString('base64');
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).filter(([k]) => !FRESH.has(k)).map(([k, v]) => [k, comparable(v)]));
  }
  return value;
}

function readSeg(file: string): { meta: unknown; dataset: unknown; fresh: Record<string, unknown> } {
  const bytes = readFileSync(file);
  const dicom = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dicom.dict) as Record<string, unknown>;
  const meta = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dicom.meta) as Record<string, unknown>;
  return { meta: comparable(meta), dataset: comparable(dataset), fresh: { SOPInstanceUID: dataset.SOPInstanceUID, SeriesInstanceUID: dataset.SeriesInstanceUID } };
}

describe('one export path', () => {
  it('the CLI and the app write identical NIfTI and DICOM SEG files for the same study and model (but for UIDs and times)', async () => {
    // the bundled model takes FLAIR, T1ce and T2: this FLAIR series feeds all three, in both
    let stderr = '';
    const code = await main(['segment', series, '--out', join(out, 'cli'), '--channels', 'flair,flair,flair', '--dicom-seg', '--json'], {
      stdout: () => {},
      stderr: (t) => void (stderr += t),
      interactive: false,
    });
    expect(code, stderr).toBe(0);

    const service = new WorkstationService({ mode: 'web', resolveExportPath: (_request, name) => join(out, 'app', name) });
    try {
      const events: ApiEvent[] = [];
      service.onEvent((e) => events.push(e));
      const { studies } = await service.openStudy({ path: series });
      const study = studies[0]!;
      const { jobId } = await service.segment({ studyId: study.id, channels: ['flair', 'flair', 'flair'] });
      await vi.waitFor(() => expect(events.find((e) => (e.type === 'done' || e.type === 'failed') && e.jobId === jobId)?.type).toBe('done'), { timeout: 240_000, interval: 200 });
      const nifti = await service.exportMasks({ studyId: study.id, format: 'nifti', source: 'prediction' });
      const seg = await service.exportMasks({ studyId: study.id, format: 'dicom-seg', source: 'prediction' });

      // the same names too: <case>_pred.nii.gz and <case>_pred_seg.dcm
      const named = (suffix: string) => readdirSync(join(out, 'cli')).filter((f) => f.endsWith(suffix));
      expect(named('_pred.nii.gz')).toEqual([nifti.files[0]!.split('/').at(-1)]);
      expect(named('_pred_seg.dcm')).toEqual([seg.files[0]!.split('/').at(-1)]);
      const cliNifti = join(out, 'cli', named('_pred.nii.gz')[0]!);
      const [a, b] = [gunzipSync(readFileSync(cliNifti)), gunzipSync(readFileSync(nifti.files[0]!))];
      expect(a.length).toBe(b.length);
      expect(a.equals(b), 'the NIfTI files differ').toBe(true);
      // some tumour was found: the comparison is not of two empty maps
      expect(a.subarray(352).some((v) => v !== 0)).toBe(true);

      const cli = readSeg(join(out, 'cli', named('_pred_seg.dcm')[0]!));
      const app = readSeg(seg.files[0]!);
      expect(app.dataset).toEqual(cli.dataset);
      expect(app.meta).toEqual(cli.meta);
      // and they are two objects, as they must be
      expect(app.fresh.SOPInstanceUID).not.toBe(cli.fresh.SOPInstanceUID);
    } finally {
      await service.dispose();
    }
  }, 400_000);
});
