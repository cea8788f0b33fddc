/**
 * An error the user can act on: printed as one line by the CLI and shown as-is in the app.
 * Anything else that escapes is a bug and is reported with its stack under --debug.
 */
export class UserError extends Error {
  override name = 'UserError';
}

/** A problem with one input file; the message always starts with the file's path. */
export class FileError extends UserError {
  override name = 'FileError';
  readonly file: string;
  readonly problem: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.file = file;
    this.problem = problem;
  }
}

/** Raised by long jobs when the caller cancelled them; never shown as a failure. */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor() {
    super('cancelled');
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A readable reason for a failed file-system call (ENOENT → "no such file or directory", …). */
export function fileSystemProblem(err: unknown): string {
  // a structural type, not NodeJS.ErrnoException: the renderer imports this module too (run-settings.ts)
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'no such file or directory';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ERR_FS_FILE_TOO_LARGE') return 'file too large to read';
  return `cannot read (${code ?? errorMessage(err)})`;
}
