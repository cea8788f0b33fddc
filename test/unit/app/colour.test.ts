/**
 * Colour DICOM through the api service with the real reader (createDefaultPorts): viewable as
 * RGB (issue 2: colour images load with their three samples and are marked as colour), refused
 * for segmentation with a message that says why.
 */
import { resolve } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { replyValidators } from '../../../main/core/api.ts';
import { decodeFrame, encodeFrame } from '../../../main/core/rpc/frame.ts';
import type { VolumeData } from '../../../main/core/api.ts';
import { createDefaultPorts } from '../../../main/core/api-ports.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { dispatch } from '../../../main/core/rpc/api-channel.ts';
import { rgbData } from '../../../main/core/io/colour.ts';

const file = resolve(import.meta.dirname, '../../../../shared/data/external/dicom/SC_rgb_jpeg_dcmtk.dcm');
const ports = createDefaultPorts();
const service = new WorkstationService({ mode: 'web', ports, resolveExportPath: vi.fn() });
afterAll(() => service.dispose());

const COLOUR_REFUSAL = /colour image; colour images cannot be segmented as MRI/;

describe('colour DICOM (SC_rgb_jpeg_dcmtk.dcm: YBR_FULL JPEG, 100×100)', () => {
  it('is summarised as colour and not segmentable', async () => {
    const { studies } = await service.openStudy({ path: file });
    expect(studies).toHaveLength(1);
    const study = studies[0]!;
    expect(study.dims).toEqual([100, 100, 1]);
    expect(study.sequences.map((s) => s.components)).toEqual([3]);
    expect(study.sequences[0]!.window).toEqual({ center: 127.5, width: 255 });
    expect(study.segmentable.available).toBe(false);
    expect(study.segmentable.reason).toMatch(COLOUR_REFUSAL);
  });

  it('getVolume sends interleaved RGB equal to rgbData of the loaded volume, and the reply is valid on the wire', async () => {
    const { studies } = await service.openStudy({ path: file });
    const study = studies[0]!;
    const reply = await dispatch(service, 'getVolume', { studyId: study.id, sequence: study.sequences[0]!.name }, () => {});
    expect(reply.ok).toBe(true);
    const volume = (reply as { value: VolumeData }).value;
    expect(volume.components).toBe(3);
    expect(volume.data).toBeInstanceOf(Uint8Array);
    expect(volume.data.length).toBe(100 * 100 * 3);
    expect([volume.slope, volume.intercept]).toEqual([1, 0]);
    expect(replyValidators.getVolume!(volume, 'reply')).toBeNull();
    expect(replyValidators.getVolume!({ ...volume, components: 2 }, 'reply')).toMatch(/components must be 1 or 3/);
    // the web bridge carries it as it is
    expect(replyValidators.getVolume!(decodeFrame(encodeFrame(volume)), 'reply')).toBeNull();

    const loaded = Object.values((await ports.openPath(file)).studies[0]!.sequences)[0]!;
    expect(loaded.components).toBe(3);
    expect(loaded.meta.extra?.photometric).toBe('YBR_FULL');
    const expected = rgbData(loaded);
    expect(Buffer.compare(Buffer.from(volume.data.buffer, volume.data.byteOffset, volume.data.byteLength), Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))).toBe(0);
    // converted, not the stored YCbCr, and really coloured
    expect(Buffer.compare(Buffer.from(volume.data), Buffer.from(loaded.data.buffer, loaded.data.byteOffset, loaded.data.byteLength))).not.toBe(0);
    let coloured = 0;
    for (let i = 0; i < volume.data.length; i += 3) {
      const [r, g, b] = [volume.data[i]!, volume.data[i + 1]!, volume.data[i + 2]!];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    }
    expect(coloured).toBeGreaterThan(1000);
  });

  it('makes a grey thumbnail from the luminance', async () => {
    const { studies } = await service.openStudy({ path: file });
    const study = studies[0]!;
    const thumb = await service.getThumbnail({ studyId: study.id, sequence: study.sequences[0]!.name, size: 50 });
    expect([thumb.width, thumb.height, thumb.data.length]).toEqual([50, 50, 2500]);
    expect(new Set(thumb.data).size).toBeGreaterThan(3);
  });

  it('refuses segmentation at once with a clear message (no job is started)', async () => {
    const { studies } = await service.openStudy({ path: file });
    const events: unknown[] = [];
    const stop = service.onEvent((e) => events.push(e));
    const reply = await dispatch(service, 'segment', { studyId: studies[0]!.id }, () => {});
    stop();
    expect(reply).toMatchObject({ ok: false, error: { name: 'UserError', user: true, message: expect.stringMatching(COLOUR_REFUSAL) } });
    expect(events).toEqual([]);
  });
});
