import { describe, expect, it } from 'vitest';
import { API_METHODS, eventValidator, replyValidators, validateRequest } from '../../../main/core/api.ts';
import { clientMessageValidator } from '../../../main/core/rpc/api-channel.ts';
import { FrameError, decodeFrame, encodeFrame } from '../../../main/core/rpc/frame.ts';

describe('api.ts request validators', () => {
  const valid: Record<string, unknown> = {
    capabilities: {},
    openStudy: { path: '/data/case' },
    closeStudy: { studyId: 's1' },
    setSequenceRoles: { studyId: 's1', roles: { '1.2.3': 'flair', '1.2.4': 't1ce' } },
    getTags: { studyId: 's1', sequence: 'flair' },
    getVolume: { studyId: 's1', sequence: 'flair' },
    getLabels: { studyId: 's1', source: 'groundTruth' },
    describeTumour: { studyId: 's1', source: 'prediction' },
    listModels: {},
    segment: { studyId: 's1', checkpoint: '/m.pth', device: 'cpu', channels: ['flair', '', 'flair'], focus: 79, precision: 'int8' },
    focusSlice: { jobId: 'j1', index: 80 },
    cancel: { jobId: 'j1' },
    chooseStudyPath: {},
    chooseExportPath: { studyId: 's1', format: 'nifti', source: 'groundTruth' },
    exportMasks: { studyId: 's1', format: 'dicom-seg', source: 'prediction', path: '/out/x.dcm' },
    openExport: { file: '/out/s1_report/report.html' },
    getThumbnail: { studyId: 's1', sequence: 'flair', size: 96 },
    chooseModelPath: {},
    addModel: { path: '/m.pth' },
    train: { data: ['/data/BraTS20_Training_001'], val: ['/data/BraTS20_Training_004'], strategy: 'lora', steps: 10, batch: 2, lr: 1e-4, size: 128, loraRank: 4, loraAlpha: 8, name: 'run-1', resume: false, model: '/m.pth' },
    listTrainingRuns: {},
    recentStudies: {},
    listDirectory: { path: '/data' },
    openSampleStudy: {},
    getSettings: {},
    updateSettings: { device: 'cpu', overlayOpacity: 0.4, overlayMode: 'outline', labelColors: { necrotic: '#f00', edema: '#0f0', enhancing: '#ff0' }, precision: 'int8' },
    pacsConnections: {},
    savePacsConnection: { name: 'PACS', url: 'http://pacs:8042/dicom-web', auth: 'basic', user: 'jane', secret: 'pw' },
    deletePacsConnection: { id: 'pacs-1' },
    testPacsConnection: { id: 'pacs-1', url: 'http://pacs:8042/dicom-web', auth: 'bearer', secret: 'token' },
    pacsSearch: { connectionId: 'pacs-1', patientName: 'doe', studyDateFrom: '2026-01-01', modality: 'MR', offset: 10, limit: 10 },
    pacsSeries: { connectionId: 'pacs-1', studyUid: '1.2.840.1' },
    pacsOpen: { connectionId: 'pacs-1', studyUid: '1.2.840.1', seriesUid: '1.2.840.1.2', jobId: 'pacs-job-1' },
    pacsSend: { studyId: 's1', connectionId: 'pacs-1' },
    openCohort: { path: '/data/cohort' },
    getCohort: { cohortId: 'cohort-1' },
    segmentCohort: { cohortId: 'cohort-1', checkpoint: '/m.pth', device: 'cpu', force: true, out: '/out/cohort' },
    openCohortCase: { cohortId: 'cohort-1', case: 'BraTS20_Training_001' },
    exportCohort: { cohortId: 'cohort-1' },
    inspectMask: { studyId: 's1', path: '/data/case/seg.dcm' },
    loadMask: { studyId: 's1', path: '/data/case/seg.dcm', as: 'prediction', segmentLabels: { '1': 4, '2': 0 } },
    editLabels: { studyId: 's1', changes: [new Uint8Array([0, 3, 0, 2])] },
    saveReviewed: { studyId: 's1', reviewer: 'Dr A' },
    listReviewed: {},
  };

  it('refuses mask requests out of range', () => {
    expect(validateRequest('loadMask', { studyId: 's1', path: '/x.dcm', as: 'prediction', segmentLabels: { '1': 3 } })).toMatch(/segmentLabels\.1 must be one of 0, 1, 2, 4/);
    expect(validateRequest('loadMask', { studyId: 's1', path: '/x.dcm', as: 'edit' })).toMatch(/as must be one of/);
    expect(validateRequest('editLabels', { studyId: 's1', changes: [[0, 3, 0, 2]] })).toMatch(/changes\[0\] must be a Uint8Array/);
    expect(validateRequest('train', { data: ['/d'], strategy: 'adapter', maxSeconds: 0 })).toMatch(/maxSeconds must be ≥ 1/);
  });

  it('has a valid example for every method, and accepts it', () => {
    expect(Object.keys(valid).sort()).toEqual([...API_METHODS].sort());
    for (const method of API_METHODS) expect(validateRequest(method, valid[method]), method).toBeNull();
  });

  it.each([
    ['nosuch', {}, /unknown method/],
    ['__proto__', {}, /unknown method/],
    ['openStudy', { path: 42 }, /openStudy.path must be a string/],
    ['pacsOpen', { connectionId: 'p', studyUid: '../../etc', jobId: 'j' }, /pacsOpen.studyUid must be a DICOM UID/],
    ['pacsSeries', { connectionId: 'p', studyUid: '1.2.3', password: 'x' }, /pacsSeries.password is not expected/],
    ['savePacsConnection', { name: 'x', url: 'http://p', auth: 'ntlm' }, /auth must be one of none, basic, bearer/],
    ['openStudy', { path: '' }, /must not be empty/],
    ['openStudy', { path: 'a\0b' }, /NUL/],
    ['openStudy', { path: 'x'.repeat(5000) }, /longer than/],
    ['openStudy', {}, /openStudy.path is missing/],
    ['openStudy', { path: '/a', extra: 1 }, /openStudy.extra is not expected/],
    ['openStudy', null, /must be an object/],
    ['openStudy', ['/a'], /must be an object/],
    ['getLabels', { studyId: 's', source: 'both' }, /source must be one of prediction, groundTruth/],
    ['exportMasks', { studyId: 's', format: 'png', source: 'prediction' }, /format must be one of/],
    ['segment', { studyId: 's', device: 7 }, /device must be a string/],
    ['segmentCohort', { cohortId: 'c', force: 'yes' }, /segmentCohort.force must be a boolean/],
    ['openCohortCase', { cohortId: 'c' }, /openCohortCase.case is missing/],
    ['openCohort', { path: '/a', out: '/b' }, /openCohort.out is not expected/],
    ['segment', { studyId: 's', channels: ['flair', 'flair', 'flair', 'flair'] }, /segment.channels has more than 3 items/],
    ['segment', { studyId: 's', channels: 'flair' }, /segment.channels must be an array/],
    ['capabilities', { x: 1 }, /not expected/],
    ['train', { data: '/a', strategy: 'adapter' }, /train.data must be an array/],
    ['train', { data: ['/a'], strategy: 'sgd' }, /strategy must be one of adapter, lora, full/],
    ['train', { data: ['/a'], strategy: 'full', steps: 1.5 }, /steps must be an integer/],
    ['train', { data: ['/a'], strategy: 'full', batch: 0 }, /batch must be ≥ 1/],
    ['train', { data: Array(1001).fill('/a'), strategy: 'full' }, /more than 1000 items/],
    ['getThumbnail', { studyId: 's', sequence: 'flair', size: 100000 }, /size must be ≤ 512/],
    ['setSequenceRoles', { studyId: 's', roles: { '1.2.3': 'dwi' } }, /roles.1.2.3 must be one of t1, t1ce, t2, flair/],
    ['closeStudy', { studyId: '' }, /must not be empty/],
    ['updateSettings', { overlayOpacity: 2 }, /overlayOpacity must be ≤ 1/],
    ['updateSettings', { labelColors: { necrotic: '#f00' } }, /labelColors.edema is missing/],
    ['updateSettings', { theme: 'dark' }, /theme is not expected/],
    ['updateSettings', { precision: 'int4' }, /precision must be one of float32, int8, float16/],
    ['segment', { studyId: 's', focus: -1 }, /segment.focus must be ≥ 0/],
    ['segment', { studyId: 's', focus: 2.5 }, /segment.focus must be an integer/],
    ['segment', { studyId: 's', precision: 'fp8' }, /segment.precision must be one of/],
    ['focusSlice', { jobId: 'j', index: '80' }, /focusSlice.index must be a finite number/],
    ['focusSlice', { index: 80 }, /focusSlice.jobId is missing/],
  ])('refuses %s %j', (method, request, message) => {
    expect(validateRequest(method, request)).toMatch(message);
  });

  it('validates events, including the mask type', () => {
    const slice = { type: 'sliceResult', jobId: 'j', studyId: 's', index: 3, mask: new Uint8Array(4), dice: { WT: 0.5, TC: null, ET: 1 }, ms: 2 };
    expect(eventValidator(slice, 'e')).toBeNull();
    expect(eventValidator({ ...slice, mask: [0, 1] }, 'e')).toMatch(/mask must be a Uint8Array/);
    expect(eventValidator({ ...slice, index: -1 }, 'e')).toMatch(/index must be ≥ 0/);
    expect(eventValidator({ type: 'explode', jobId: 'j' }, 'e')).toMatch(/type must be one of/);
    expect(eventValidator({ type: 'done', jobId: 'j', studyId: 's', dice: null, ms: 1, device: 'cpu' }, 'e')).toBeNull();
  });

  it('validates the cohort events and views', () => {
    const row = { case: 'c1', path: '/data/c1', kind: 'brats', sequences: ['flair'], sequencesUsed: null, groundTruth: true, status: 'done', error: null, volumes: { WT: 3 }, dice: { WT: 0.9, ET: null }, seconds: 7 };
    expect(eventValidator({ type: 'cohortCase', cohortId: 'k', jobId: 'j', row }, 'e')).toBeNull();
    expect(eventValidator({ type: 'cohortCase', cohortId: 'k', jobId: 'j', row: { ...row, status: 'lost' } }, 'e')).toMatch(/row.status must be one of/);
    expect(eventValidator({ type: 'cohortCase', cohortId: 'k', jobId: 'j', row: { ...row, dice: { WT: '0.9' } } }, 'e')).toMatch(/row.dice.WT must be a finite number/);
    expect(eventValidator({ type: 'cohortDone', cohortId: 'k', jobId: 'j', counts: { done: 1, skipped: 0, failed: 1, pending: 0 } }, 'e')).toBeNull();
    const view = { cohortId: 'k', name: 'n', folder: '/data', out: null, regions: ['WT'], rows: [row], notes: [], jobId: null };
    expect(replyValidators.openCohort!(view, 'r')).toBeNull();
    expect(replyValidators.openCohort!({ ...view, rows: [{ ...row, path: '' }] }, 'r')).toMatch(/must not be empty/);
  });

  it('validates volume replies', () => {
    const volume = { studyId: 's', sequence: 'flair', dims: [2, 2, 1], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1], slope: 1, intercept: 0, window: { center: 1, width: 2 }, components: 1, data: new Int16Array(4) };
    expect(replyValidators.getVolume!(volume, 'r')).toBeNull();
    expect(replyValidators.getVolume!({ ...volume, data: 'AAAA' }, 'r')).toMatch(/data must be/);
    expect(replyValidators.getVolume!({ ...volume, components: 2 }, 'r')).toMatch(/components must be 1 or 3/);
  });

  it('validates web envelopes', () => {
    expect(clientMessageValidator({ kind: 'call', id: 1, method: 'listModels', request: {} }, 'm')).toBeNull();
    expect(clientMessageValidator({ kind: 'call', id: 1.5, method: 'listModels', request: {} }, 'm')).toMatch(/integer/);
    expect(clientMessageValidator({ kind: 'call', id: 1, method: 'rm', request: {} }, 'm')).toMatch(/method must be one of/);
  });
});

describe('api.ts binary frames', () => {
  it('round-trips typed arrays of every kind, aligned, next to JSON', () => {
    const message = {
      kind: 'event',
      nested: { a: new Int16Array([-3, 7, 32767]), b: [new Float32Array([1.5, -2]), new Uint8Array([1, 2, 3])] },
      f64: new Float64Array([Math.PI]),
      text: 'Ünïcode ✓',
    };
    const frame = encodeFrame(message);
    const decoded = decodeFrame(frame) as typeof message;
    expect(decoded.text).toBe(message.text);
    expect(decoded.nested.a).toBeInstanceOf(Int16Array);
    expect([...decoded.nested.a]).toEqual([-3, 7, 32767]);
    expect([...decoded.nested.b[0]!]).toEqual([1.5, -2]);
    expect([...decoded.nested.b[1]!]).toEqual([1, 2, 3]);
    expect(decoded.f64[0]).toBe(Math.PI);
    // aligned input: views on the frame, no copies
    expect(decoded.nested.a.buffer).toBe(frame.buffer);
    expect(decoded.nested.a.byteOffset % 8).toBe(0);
  });

  it('copies when the frame itself is misaligned (as Node Buffers can be)', () => {
    const frame = encodeFrame({ v: new Float32Array([1, 2, 3]) });
    const shifted = new Uint8Array(frame.length + 3).subarray(3);
    shifted.set(frame);
    const decoded = decodeFrame(shifted) as { v: Float32Array };
    expect([...decoded.v]).toEqual([1, 2, 3]);
  });

  it('sends subarrays without their neighbours', () => {
    const whole = new Uint8Array([9, 9, 1, 2, 9]);
    const decoded = decodeFrame(encodeFrame({ m: whole.subarray(2, 4) })) as { m: Uint8Array };
    expect([...decoded.m]).toEqual([1, 2]);
  });

  it('refuses malformed frames with a FrameError', () => {
    expect(() => decodeFrame(new Uint8Array(2))).toThrow(FrameError);
    const lying = new Uint8Array(8);
    new DataView(lying.buffer).setUint32(0, 1000, true);
    expect(() => decodeFrame(lying)).toThrow(/header runs past/);
    const frame = encodeFrame({ v: new Float64Array(4) });
    expect(() => decodeFrame(frame.subarray(0, frame.length - 8))).toThrow(/runs past the end/);
    const header = new TextEncoder().encode('{"v":{"$ta":"Nope","o":0,"n":1}}');
    const bad = new Uint8Array(8 + header.length + 8);
    new DataView(bad.buffer).setUint32(0, header.length, true);
    bad.set(header, 4);
    expect(() => decodeFrame(bad)).toThrow(/malformed array reference/);
  });
});
