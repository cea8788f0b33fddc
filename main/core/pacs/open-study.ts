/**
 * Opening a study (or one series) from a PACS: its image series fetched (retrieve.ts), each
 * instance checked and parsed once as it arrives, then the study assembled from those parsed
 * instances in memory — not read back from cache files — through the same assembly as a folder
 * of the same files (io/open.ts openDicomSources: series, four-sequence study, names), so a PACS
 * study and the same files on disk open identically. Instances cached already are read from
 * their files as a folder's would be. The fetched instances go into the cache afterwards
 * (`writeCache`), behind the open.
 */
import { readDicomCandidates } from '../io/dicom/index.ts';
import { openDicomSources, type OpenResult } from '../io/open.ts';
import type { InstanceCache } from './cache.ts';
import type { DicomWebClient } from './dicomweb.ts';
import { retrieveStudy, type RetrieveOptions, type RetrieveResult } from './retrieve.ts';

export type PacsOpenOptions = Omit<RetrieveOptions, 'keep' | 'imagesOnly'>;

/** What the fetch did, for notes and messages (the files and the parsed instances are not repeated). */
export type PacsFetchSummary = Pick<RetrieveResult, 'folder' | 'instances' | 'bytes' | 'cachedInstances' | 'ms'> & { series: number };

export interface PacsOpened extends OpenResult {
  fetched: PacsFetchSummary;
  /**
   * Writes the fetched instances into the cache (once; later calls give the same promise) and
   * settles with what could not be written. The open does not wait for it: call it when the
   * study is in hand; until then the instances stay pinned in the cache.
   */
  writeCache: () => Promise<string[]>;
}

export async function openPacsStudy(client: DicomWebClient, cache: InstanceCache, options: PacsOpenOptions): Promise<PacsOpened> {
  const fetched = await retrieveStudy(client, cache, { ...options, imagesOnly: true, keep: true });
  const writeCache = fetched.writeCache!;
  let opened: OpenResult;
  const notes = [...fetched.notes];
  try {
    const parsed = fetched.parsed ?? [];
    const inMemory = new Set(parsed.map((ds) => ds.file));
    const fromCache = await readDicomCandidates(
      fetched.files.filter((file) => !inMemory.has(file)).map((name) => ({ name, explicit: false })),
      notes,
    );
    opened = await openDicomSources([...parsed.map((dataset) => ({ name: dataset.file, dataset, explicit: false })), ...fromCache], fetched.folder);
  } catch (err) {
    // what was fetched is kept all the same
    void writeCache();
    throw err;
  }
  const { folder, instances, bytes, cachedInstances, ms } = fetched;
  return {
    studies: opened.studies,
    notes: [...notes, ...opened.notes],
    segmentations: opened.segmentations,
    fetched: { folder, instances, bytes, cachedInstances, ms, series: fetched.series.length },
    writeCache,
  };
}
