import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { defineCommand, rangedOption, requireOption, stringOption, type CommandIO, type ParsedArgs } from '../command.ts';
import { UserError } from '../../core/errors.ts';
import { PACS_CACHE_OPTIONS, PACS_URL_OPTION, fetchWithProgress, pacsClient } from '../pacs-hook.ts';
import type { PacsStudy } from '../../core/pacs/dicomweb.ts';

const SUBCOMMANDS = ['search', 'fetch', 'test'] as const;

function studyLine(s: PacsStudy, personName: (pn: string) => string | undefined): string {
  const date = s.studyDate ? `${s.studyDate.slice(0, 4)}-${s.studyDate.slice(4, 6)}-${s.studyDate.slice(6, 8)}` : '          ';
  const counts = `${s.series ?? '?'} series, ${s.instances ?? '?'} instances`;
  return `${s.studyUid}  ${date}  ${(personName(s.patientName) ?? '').padEnd(24)} ${s.patientId.padEnd(12)} ${s.modalities.join('/').padEnd(6)} ${(s.description ?? '').padEnd(32)} ${counts}`;
}

async function search(args: ParsedArgs, io: CommandIO): Promise<number> {
  const [client, { personName }] = await Promise.all([pacsClient(args), import('../../core/io/dicom-study.ts')]);
  const limit = rangedOption(args, 'limit', { integer: true, min: 1, max: 1000 }, 50);
  const offset = rangedOption(args, 'offset', { integer: true, min: 0 }, 0);
  const base = {
    ...(stringOption(args, 'study-date') ? { studyDate: stringOption(args, 'study-date') } : {}),
    ...(stringOption(args, 'modality') ? { modality: stringOption(args, 'modality') } : {}),
    ...(stringOption(args, 'description') ? { description: stringOption(args, 'description') } : {}),
    ...(stringOption(args, 'patient-id') ? { patientId: stringOption(args, 'patient-id') } : {}),
    limit,
    offset,
  };
  const patient = stringOption(args, 'patient');
  let studies: PacsStudy[];
  let more: boolean;
  if (patient) {
    // --patient matches the name or the ID: QIDO cannot say "or", so two queries, merged
    const [byName, byId] = await Promise.all([client.searchStudies({ ...base, patientName: patient }), client.searchStudies({ ...base, patientId: patient })]);
    const seen = new Set<string>();
    studies = [...byName.studies, ...byId.studies].filter((s) => !seen.has(s.studyUid) && seen.add(s.studyUid));
    more = byName.more || byId.more;
  } else {
    ({ studies, more } = await client.searchStudies(base));
  }
  const withSeries = args.values['with-series'] === true;
  const series = withSeries ? await Promise.all(studies.map((s) => client.searchSeries(s.studyUid))) : [];
  if (args.values.json === true) {
    io.stdout(`${JSON.stringify({ pacs: client.baseUrl, offset, more, studies: studies.map((s, i) => (withSeries ? { ...s, seriesList: series[i] } : s)) }, null, 2)}\n`);
    return 0;
  }
  if (!studies.length) {
    io.stdout(`no studies found on ${client.baseUrl}\n`);
    return 0;
  }
  studies.forEach((s, i) => {
    io.stdout(`${studyLine(s, personName)}\n`);
    for (const se of series[i] ?? []) io.stdout(`    series ${String(se.number ?? '').padStart(3)}  ${(se.modality ?? '').padEnd(4)} ${(se.description ?? '').padEnd(32)} ${se.instances ?? '?'} instances  ${se.seriesUid}\n`);
  });
  if (more) io.stdout(`… more studies: --offset ${offset + limit}\n`);
  return 0;
}

async function fetchStudy(args: ParsedArgs, io: CommandIO): Promise<number> {
  if (args.positionals.length !== 2) throw new UserError('pacs fetch takes one StudyInstanceUID (see --help)');
  const out = requireOption(args, 'out');
  const { checkUid } = await import('../../core/pacs/dicomweb.ts');
  const studyUid = checkUid(args.positionals[1]!, 'StudyInstanceUID');
  const seriesUid = stringOption(args, 'series');
  const { result } = await fetchWithProgress(args, io, studyUid, { ...(seriesUid ? { seriesUid: checkUid(seriesUid, 'SeriesInstanceUID') } : {}), imagesOnly: false });
  const { writeFileAtomic } = await import('../../core/util/fs.ts');
  // <out>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm: a folder `sam2unet segment` and other viewers open
  const written: string[] = [];
  for (const file of result.files) {
    const parts = file.split(/[\\/]/);
    const target = join(out, parts.at(-2)!, parts.at(-1)!);
    await writeFileAtomic(target, await readFile(file));
    written.push(target);
  }
  if (args.values.json === true) io.stdout(`${JSON.stringify({ study: studyUid, out, instances: written.length, bytes: result.bytes, cachedInstances: result.cachedInstances, series: result.series, files: written })}\n`);
  else io.stdout(`wrote ${written.length} instances of ${result.series.length} series to ${out}\n`);
  return 0;
}

async function test(args: ParsedArgs, io: CommandIO): Promise<number> {
  const client = await pacsClient(args);
  const result = await client.testConnection();
  if (args.values.json === true) io.stdout(`${JSON.stringify(result)}\n`);
  else io.stdout(`${result.ok ? 'ok' : `failed (${result.failure})`}: ${result.message}\n`);
  return result.ok ? 0 : 1;
}

export default defineCommand({
  name: 'pacs',
  summary: 'a PACS over DICOMweb: search studies, fetch one, test the connection',
  usage: 'pacs search|fetch|test --pacs <url> [options]',
  options: {
    ...PACS_URL_OPTION,
    patient: { type: 'string', valueName: 'text', description: 'search: patient name (anywhere in it) or patient ID' },
    'patient-id': { type: 'string', valueName: 'id', description: 'search: patient ID only (exact, or with * and ?)' },
    'study-date': { type: 'string', valueName: 'from-to', description: 'search: study date or range, YYYYMMDD-YYYYMMDD (either end may be open: 20260101-)' },
    modality: { type: 'string', valueName: 'MR', description: 'search: a modality in the study' },
    description: { type: 'string', valueName: 'text', description: 'search: study description (anywhere in it)' },
    limit: { type: 'string', valueName: 'N', description: 'search: studies per page (default 50)' },
    offset: { type: 'string', valueName: 'N', description: 'search: skip this many studies (the next page)' },
    'with-series': { type: 'boolean', description: 'search: list each study\'s series (description, modality, instances)' },
    series: { type: 'string', valueName: 'UID', description: 'fetch: one series only' },
    out: { type: 'string', valueName: 'dir', description: 'fetch: where the study goes, as <dir>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm' },
    ...PACS_CACHE_OPTIONS,
    json: { type: 'boolean', description: 'machine-readable output' },
  },
  details:
    'pacs search [--patient …] [--study-date from-to] [--modality MR] [--description …] [--with-series] [--json]\n' +
    'pacs fetch <StudyInstanceUID> --out <dir> [--series <UID>]\n' +
    'pacs test: checks the URL and the credentials and says what failed (DNS, refused, TLS, 401, 404 …)\n' +
    'Credentials come from the environment only (SAM2UNET_PACS_USER and SAM2UNET_PACS_PASSWORD for\n' +
    'basic authentication, SAM2UNET_PACS_TOKEN for a bearer token), never from a flag.\n' +
    'Segment a PACS study and store the DICOM SEG and PDF report back:\n' +
    '  sam2unet segment pacs://<StudyInstanceUID> --pacs <url> --store --out <dir>',
  async run(args, io) {
    const sub = args.positionals[0];
    if (!sub || !(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UserError(`pacs needs one of ${SUBCOMMANDS.join(', ')} (see sam2unet pacs --help)`);
    if (sub !== 'fetch' && args.positionals.length > 1) throw new UserError(`pacs ${sub} takes no further arguments (got "${args.positionals[1]}")`);
    if (sub === 'search') return search(args, io);
    if (sub === 'fetch') return fetchStudy(args, io);
    return test(args, io);
  },
});
