/** Options of a send (per transfer, and the job's files in flight): defaults, and the bounds a client may set. */
import { createError, DEFAULT_CHUNK_SIZE, DEFAULT_WINDOW, ErrorCode, MAX_CHUNK_SIZE, MAX_PUT_FILE_SIZE, MAX_WINDOW } from '@relayer/common';

export interface TransferOptions {
  /** Bytes per chunk. Default 1 MiB, at most 2 MiB (MAX_CHUNK_SIZE). */
  chunkSize: number;
  /** Chunks in flight. Default 8. */
  window: number;
  /** Bytes per second; 0 means unlimited. */
  bwlimit: number;
  /** Give up after this long without progress (receiver down, no answers). Default 10 minutes. */
  timeoutMs: number;
  /** Wait for one chunk's ack at most this long before recycling the connection. Default 30s. */
  ackTimeoutMs: number;
  /**
   * Files of one job in flight to each receiver at once (the job runner's option; a transfer ignores it).
   * Default 16: small files' round trips and the receiver's fsyncs overlap. See job.ts.
   */
  filesInFlight: number;
  /**
   * Files up to this many bytes travel whole, many per round trip (see small-files.ts); larger ones are
   * offered and sent in chunks. Default 256 KiB, at most 1 MiB; 0 sends every file by offer.
   */
  smallFileMax: number;
}

export const TRANSFER_DEFAULTS: TransferOptions = {
  chunkSize: DEFAULT_CHUNK_SIZE,
  window: DEFAULT_WINDOW,
  bwlimit: 0,
  timeoutMs: 10 * 60_000,
  ackTimeoutMs: 30_000,
  filesInFlight: 16,
  smallFileMax: 256 * 1024,
};

/** Bounds of the options a `relay` client may choose; anything else in a request is refused. */
const CLIENT_OPTION_BOUNDS: Record<'chunkSize' | 'window' | 'bwlimit' | 'timeoutMs' | 'filesInFlight' | 'smallFileMax', [number, number]> = {
  chunkSize: [1, MAX_CHUNK_SIZE],
  window: [1, MAX_WINDOW],
  bwlimit: [0, Number.MAX_SAFE_INTEGER],
  timeoutMs: [1000, 7 * 86_400_000],
  filesInFlight: [1, 64],
  smallFileMax: [0, MAX_PUT_FILE_SIZE],
};

/** Checks transfer options that come from outside (CLI flags, control requests). Throws USAGE. */
export function checkTransferOptions(input: unknown): Partial<TransferOptions> {
  if (typeof input !== 'object' || input === null) throw createError(ErrorCode.USAGE, 'transfer options must be an object');
  const out: Partial<TransferOptions> = {};
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined || value === null) continue;
    const bounds = CLIENT_OPTION_BOUNDS[key as keyof typeof CLIENT_OPTION_BOUNDS];
    if (!bounds) throw createError(ErrorCode.USAGE, `unknown transfer option ${key}`);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < bounds[0] || value > bounds[1]) {
      throw createError(ErrorCode.USAGE, `${key} must be an integer from ${bounds[0]} to ${bounds[1]}, got ${String(value)}`);
    }
    out[key as keyof typeof CLIENT_OPTION_BOUNDS] = value;
  }
  return out;
}
