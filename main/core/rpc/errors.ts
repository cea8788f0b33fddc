/**
 * The one way errors cross a boundary (worker threads, the Electron port, the WebSocket). What an
 * error IS — something the user can act on, a cancellation, a bug — is decided where it is
 * thrown, by its class (`instanceof`), and travels as data; the receiving side rebuilds an error of
 * the same class, so `err instanceof UserError` means the same on both sides.
 *
 * Free of Node and DOM imports: the renderer decodes the errors of its calls with it.
 */
import { CancelledError, FileError, UserError } from '../errors.ts';
import { s, type Infer } from '../schema.ts';

/** A call the channel refused before running it: unknown method, or a request its schema rejects. */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequest';
}

/** A call from a sender the channel does not serve (another page than the app's renderer). */
export class ForbiddenError extends Error {
  override name = 'Forbidden';
}

/** A reply or event that does not match the contract: a bug on the sending side, never shown as the user's fault. */
export class ContractError extends Error {
  override name = 'ContractError';
}

export const WireError = s.object(
  {
    name: s.string({ max: 256 }),
    message: s.string({ max: 65_536 }),
    /** the message is meant for the user as it is (a UserError or a cancellation) */
    user: s.boolean(),
  },
  {
    /** FileError: the file the message is about */
    file: s.string({ max: 4096 }),
    /** where a bug happened; only over trusted in-process boundaries (worker threads) */
    stack: s.string({ max: 65_536 }),
  },
);
export type WireError = Infer<typeof WireError>;

export function encodeError(err: unknown, opts: { stack?: boolean } = {}): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), user: false };
  const user = err instanceof UserError || err instanceof CancelledError;
  return {
    name: err.name,
    message: err.message,
    user,
    ...(err instanceof FileError ? { file: err.file } : {}),
    ...(opts.stack && !user && err.stack ? { stack: err.stack } : {}),
  };
}

/**
 * The error `wire` describes, as an instance of its class where the class is one of the
 * contract's (user errors, cancellation, refusals); anything else is a plain Error keeping the
 * remote name and stack, for the log.
 */
export function decodeError(wire: WireError): Error {
  if (wire.name === 'CancelledError') return new CancelledError();
  if (wire.name === 'InvalidRequest') return new InvalidRequestError(wire.message);
  if (wire.name === 'Forbidden') return new ForbiddenError(wire.message);
  if (wire.user) {
    if (wire.file !== undefined && wire.message.startsWith(`${wire.file}: `)) return new FileError(wire.file, wire.message.slice(wire.file.length + 2));
    const err = new UserError(wire.message);
    err.name = wire.name;
    return err;
  }
  const err = new Error(wire.message);
  err.name = wire.name;
  if (wire.stack) err.stack = wire.stack;
  return err;
}

/**
 * The renderer's error for a failed API call: keeps the server's message, and whether it is
 * meant for the user (then shown as it is; otherwise prefixed with the call that failed).
 */
export class ApiCallError extends Error {
  override name = 'ApiCallError';
  readonly remoteName: string;
  readonly user: boolean;
  constructor(method: string, error: WireError) {
    super(error.user ? error.message : `${method} failed: ${error.message}`);
    this.remoteName = error.name;
    this.user = error.user;
  }
}
