/** Worker-thread entry points compiled one bundle each (paths from the project root). */
export const WORKER_ENTRIES: readonly string[];
/** The identifier esbuild defines as true in every bundle. */
export const BUNDLE_FLAG: string;
/** Builds dist/app/; resolves to the bytes of each bundle written, by file name. */
export function buildApp(options?: { quiet?: boolean }): Promise<Record<string, number>>;
