/**
 * Errors with stable codes. A code is part of the protocol: it travels in replies, it is printed by the CLI
 * and it decides whether the sender retries. Messages may change; codes may not.
 */
export const ErrorCode = {
  /** The handshake token is missing or wrong. */
  AUTH: 'AUTH',
  /** A file name the receiver will not write: absolute, `..`, control characters, reserved or via a symlink. */
  BAD_NAME: 'BAD_NAME',
  /** The offered size is over the receiver's --max-file-size. */
  TOO_LARGE: 'TOO_LARGE',
  /** Accepting the file would leave less than --min-free on the receiver's disk (or the disk filled up). */
  DISK_FULL: 'DISK_FULL',
  /** A chunk's crc32 or the file's sha256 did not match. */
  CHECKSUM: 'CHECKSUM',
  /** A chunk offset outside the offered size, or a commit before all bytes arrived. */
  OFFSET: 'OFFSET',
  /** A frame that does not have the protocol's shape. */
  PROTOCOL: 'PROTOCOL',
  /** The transfer id is not (or no longer) known to the receiver, e.g. after it restarted. */
  UNKNOWN_TRANSFER: 'UNKNOWN_TRANSFER',
  /** Another sender is now sending a different version of this file: last offer wins, this one stops. */
  SUPERSEDED: 'SUPERSEDED',
  /** The source file changed while it was being sent. */
  SOURCE_CHANGED: 'SOURCE_CHANGED',
  /** A local file could not be read, or is not a regular file. */
  SOURCE: 'SOURCE',
  /** The file is outside every --allow-root of the sender agent. */
  NOT_ALLOWED: 'NOT_ALLOWED',
  /** No receiver could be reached in time, or none is configured. */
  UNREACHABLE: 'UNREACHABLE',
  /** A --to name the sender agent does not know (neither configured nor discovered): nothing was sent. */
  UNKNOWN_RECEIVER: 'UNKNOWN_RECEIVER',
  /** The connection dropped. */
  DISCONNECTED: 'DISCONNECTED',
  /** No answer in time. */
  TIMEOUT: 'TIMEOUT',
  /** The job was cancelled (client gone, agent closing). */
  CANCELLED: 'CANCELLED',
  /** An I/O error that is not one of the above (on the receiver; on the sender, a folder it cannot list). */
  IO: 'IO',
  /**
   * The receiver's folder was replaced while it runs (a symlink on the way to --dir, or a partial folder
   * that is not its own): it writes nothing until its operator fixes that. The detail is in its log only.
   */
  INBOX_UNSAFE: 'INBOX_UNSAFE',
  /** A TLS failure: certificate not trusted, host name mismatch, or one side speaks TLS and the other not. */
  TLS: 'TLS',
  /** Bad command-line usage. */
  USAGE: 'USAGE',
  /** A per-connection limit of the receiver (open transfers) is reached: finish or abort one first. */
  LIMIT: 'LIMIT',
  /** The receiver defines no action of that name (in its --action-dir): refused before any byte is sent. */
  NO_ACTION: 'NO_ACTION',
  /** A node action exited non-zero, was killed by a signal or ran past --action-timeout. */
  ACTION_FAILED: 'ACTION_FAILED',
  /** No such release (or none to roll back to); also a release being staged that the receiver no longer knows (it restarted). */
  NO_RELEASE: 'NO_RELEASE',
  /** A release asked to be staged before every file of its manifest was there and verified. */
  RELEASE_INCOMPLETE: 'RELEASE_INCOMPLETE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODES = new Set<string>(Object.values(ErrorCode));
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && CODES.has(value);
}

/** Codes a sender recovers from by reconnecting and re-offering; every other code is final. */
const RETRYABLE = new Set<ErrorCode>([
  ErrorCode.UNKNOWN_TRANSFER,
  ErrorCode.DISCONNECTED,
  ErrorCode.TIMEOUT,
  ErrorCode.IO,
  ErrorCode.LIMIT,
]);

/** A sender retries (reconnects, re-offers, resumes) after this code: it does not end a transfer. */
export function isRetryable(code: ErrorCode): boolean {
  return RETRYABLE.has(code);
}

export class RelayError extends Error {
  override readonly name = 'RelayError';
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

export function createError(code: ErrorCode, message: string, cause?: unknown): RelayError {
  return new RelayError(code, message, cause === undefined ? undefined : { cause });
}

export function isRelayError(err: unknown, code?: ErrorCode): err is RelayError {
  return err instanceof RelayError && (code === undefined || err.code === code);
}

/** The shape an error takes on the wire. */
export interface WireError {
  code: ErrorCode;
  message: string;
}

/** errno codes that mean "the disk is full", whatever the file system. */
const DISK_FULL_ERRNO = new Set(['ENOSPC', 'EDQUOT']);

/** What an errno code means, in the words a user reads (never the syscall's name). */
const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'is a directory',
  ENAMETOOLONG: 'path too long',
  ELOOP: 'too many levels of symbolic links',
  EIO: 'input/output error (the disk may be failing)',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files on the system',
  EROFS: 'read-only file system',
  EBUSY: 'resource busy',
  EEXIST: 'already exists',
  ENOTEMPTY: 'folder not empty',
  EXDEV: 'crosses file systems',
  ESTALE: 'stale file handle (network file system)',
  ENOMEM: 'out of memory',
  EAGAIN: 'resource temporarily unavailable',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
};

/** "permission denied" for EACCES; an unknown code reads "I/O error (ECODE)". */
export function describeErrno(code: string): string {
  return ERRNO_TEXT[code] ?? `I/O error (${code})`;
}

/**
 * The one conversion of anything thrown into a RelayError, used at every edge (replies to a peer, the
 * control socket, the CLIs). A RelayError passes through; a system error becomes `fallback` (IO for the
 * receiver, SOURCE for a local file) with a message saying what its errno code means: an error that
 * leaves this process must not carry a path of this machine.
 */
export function toRelayError(err: unknown, fallback: ErrorCode = ErrorCode.IO): RelayError {
  if (err instanceof RelayError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e.code === 'string' && DISK_FULL_ERRNO.has(e.code)) return createError(ErrorCode.DISK_FULL, 'disk full', err);
  if (e && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) {
    return createError(fallback, describeErrno(e.code), err);
  }
  if (e instanceof Error && e.name === 'AbortError') return createError(ErrorCode.CANCELLED, 'cancelled', err);
  return createError(fallback, e instanceof Error ? e.message : String(err), err);
}

export function toWireError(err: unknown): WireError {
  const e = toRelayError(err);
  return { code: e.code, message: e.message };
}

/** A peer's error reply: an unknown code or a malformed shape is itself a protocol error. */
export function fromWireError(wire: unknown): RelayError {
  const w = wire as Partial<WireError> | null;
  if (!w || typeof w !== 'object' || typeof w.message !== 'string') return new RelayError(ErrorCode.PROTOCOL, 'malformed error reply');
  const message = w.message.slice(0, 2000);
  if (!isErrorCode(w.code)) return new RelayError(ErrorCode.PROTOCOL, `unknown error code ${String(JSON.stringify(w.code)).slice(0, 100)} from peer: ${message}`);
  return new RelayError(w.code, message);
}
