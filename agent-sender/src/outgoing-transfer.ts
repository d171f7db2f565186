/**
 * One file to one receiver: offering → sending → committing → confirmed | failed | cancelled.
 * Chunks go out in a window, each acked with the receiver's contiguous offset. The sha256 is computed
 * once, in order, as bytes are first read; a rewind (a gap or a corrupt chunk) re-reads but never
 * re-hashes. On a disconnect or an ack timeout the attempt ends and p-retry starts another, which
 * re-offers and continues from the receiver's offset: at most one window is sent twice.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import pRetry, { AbortError } from 'p-retry';
import {
  createError, DEFAULT_CHUNK_SIZE, DEFAULT_WINDOW, ErrorCode, MAX_CHUNK_SIZE, RelayError,
  type Logger, type ReceivedFrame,
} from '@relayer/common';
import type { Link } from './link.js';

export const OutgoingState = {
  OFFERING: 'offering',
  SENDING: 'sending',
  COMMITTING: 'committing',
  CONFIRMED: 'confirmed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
} as const;
export type OutgoingState = (typeof OutgoingState)[keyof typeof OutgoingState];

export interface TransferOptions {
  /** Bytes per chunk. Default 1 MiB, at most 16 MiB. */
  chunkSize: number;
  /** Chunks in flight. Default 8. */
  window: number;
  /** Bytes per second; 0 means unlimited. */
  bwlimit: number;
  /** Give up after this long without progress (receiver down, no answers). Default 10 minutes. */
  timeoutMs: number;
  /** Wait for one chunk's ack at most this long before recycling the connection. Default 30s. */
  ackTimeoutMs: number;
}

export const TRANSFER_DEFAULTS: TransferOptions = {
  chunkSize: DEFAULT_CHUNK_SIZE,
  window: DEFAULT_WINDOW,
  bwlimit: 0,
  timeoutMs: 10 * 60_000,
  ackTimeoutMs: 30_000,
};

/** Corrupt chunks in a row (no progress between) before the transfer fails. */
const MAX_CHECKSUM_REJECTS = 8;

export interface Confirmation extends ReceivedFrame {
  receiver: string;
  /** Bytes this run put on the wire (less than size after a resume). */
  bytesSent: number;
  resumedFrom: number;
  elapsedMs: number;
}

export interface Progress {
  receiver: string;
  name: string;
  size: number;
  /** Bytes the receiver has acknowledged. */
  acked: number;
}

interface OutgoingEvents {
  progress: [Progress];
  state: [OutgoingState];
}

export class OutgoingTransfer extends EventEmitter<OutgoingEvents> {
  state: OutgoingState = OutgoingState.OFFERING;
  acked = 0;
  size = 0;
  private bytesSent = 0;
  private resumedFrom: number | undefined;
  private readonly hash = createHash('sha256');
  private hashedTo = 0;
  private sha256: string | undefined;
  private lastProgressAt = Date.now();
  private progressThisAttempt = false;
  private readonly opts: TransferOptions;
  private readonly log: Logger;

  constructor(
    private readonly link: Link,
    private readonly file: string,
    readonly name: string,
    options: Partial<TransferOptions>,
    logger: Logger,
    private readonly signal?: AbortSignal,
  ) {
    super();
    this.opts = { ...TRANSFER_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    if (!(this.opts.chunkSize > 0 && this.opts.chunkSize <= MAX_CHUNK_SIZE)) {
      throw createError(ErrorCode.USAGE, `chunk size must be between 1 byte and ${MAX_CHUNK_SIZE}`);
    }
    if (!(this.opts.window >= 1 && this.opts.window <= 256)) throw createError(ErrorCode.USAGE, 'window must be between 1 and 256');
    this.log = logger.child({ receiver: link.name, file: name });
  }

  get receiver(): string {
    return this.link.name;
  }

  private setState(state: OutgoingState): void {
    this.state = state;
    this.emit('state', state);
  }

  async run(): Promise<Confirmation> {
    const started = Date.now();
    let fh: FileHandle;
    try {
      fh = await open(this.file, 'r');
    } catch (err) {
      throw this.fail(createError(ErrorCode.SOURCE, `cannot read ${this.file}: ${(err as Error).message}`));
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw createError(ErrorCode.SOURCE, `${this.file} is not a regular file`);
      const identity = { size: st.size, mtimeMs: st.mtimeMs };
      this.size = identity.size;
      const received = await pRetry(() => this.attempt(fh, identity), {
        retries: 30,
        minTimeout: 200,
        maxTimeout: 5000,
        randomize: true,
        signal: this.signal,
        shouldConsumeRetry: () => !this.progressThisAttempt,
        shouldRetry: ({ error }) => error instanceof RelayError && error.retryable
          && Date.now() - this.lastProgressAt < this.opts.timeoutMs && !this.signal?.aborted,
        onFailedAttempt: ({ error, attemptNumber }) => {
          if (!(error instanceof RelayError && error.retryable)) return;
          this.log.warn({ code: (error as RelayError).code, reason: error.message, attempt: attemptNumber, acked: this.acked }, 'attempt failed');
        },
      });
      this.setState(OutgoingState.CONFIRMED);
      return { ...received, receiver: this.link.name, bytesSent: this.bytesSent, resumedFrom: this.resumedFrom ?? 0, elapsedMs: Date.now() - started };
    } catch (err) {
      throw this.fail(err);
    } finally {
      await fh.close();
    }
  }

  private fail(err: unknown): RelayError {
    const e = err instanceof RelayError ? err
      : this.signal?.aborted ? createError(ErrorCode.CANCELLED, 'cancelled')
      : createError(ErrorCode.IO, (err as Error)?.message ?? String(err), err);
    this.setState(e.code === ErrorCode.CANCELLED ? OutgoingState.CANCELLED : OutgoingState.FAILED);
    return e;
  }

  private progressed(acked: number): void {
    if (acked <= this.acked) return;
    this.acked = acked;
    this.lastProgressAt = Date.now();
    this.progressThisAttempt = true;
    this.emit('progress', { receiver: this.link.name, name: this.name, size: this.size, acked });
  }

  private async attempt(fh: FileHandle, identity: { size: number; mtimeMs: number }): Promise<ReceivedFrame> {
    this.progressThisAttempt = false;
    this.setState(OutgoingState.OFFERING);
    await this.link.ready(Math.max(1, this.opts.timeoutMs - (Date.now() - this.lastProgressAt)), this.signal);
    const now = await fh.stat();
    if (now.size !== identity.size || now.mtimeMs !== identity.mtimeMs) {
      throw new AbortError(createError(ErrorCode.SOURCE_CHANGED, `${this.file} changed while it was being sent`));
    }
    const offer = await this.link.request('offer', { name: this.name, size: identity.size, mtimeMs: identity.mtimeMs }, this.opts.ackTimeoutMs);
    // The offset the latest resume continued from (an earlier attempt of this run may have started at 0).
    if (offer.offset > 0) this.resumedFrom = offer.offset;
    this.acked = offer.offset;
    this.progressThisAttempt ||= offer.offset > 0;
    if (offer.offset > 0) this.log.info({ offset: offer.offset }, 'resuming');
    try {
      if (offer.existingSize === identity.size && offer.offset < identity.size) {
        // The receiver has a file of this size: check it by hash before sending a byte.
        await this.hashTo(fh, identity.size);
        const unchanged = await this.commit(offer.transfer).catch((err: unknown) => {
          if (err instanceof RelayError && err.code === ErrorCode.OFFSET) return undefined; // it differs: send it
          throw err;
        });
        if (unchanged) return unchanged;
      }
      this.setState(OutgoingState.SENDING);
      await this.hashTo(fh, offer.offset);
      await this.sendFrom(fh, offer.transfer, offer.offset);
      await this.hashTo(fh, identity.size);
      return await this.commit(offer.transfer);
    } catch (err) {
      if (this.signal?.aborted) {
        this.link.notify('abort', { transfer: offer.transfer });
        throw new AbortError(createError(ErrorCode.CANCELLED, 'cancelled'));
      }
      if (err instanceof RelayError && err.code === ErrorCode.TIMEOUT) this.link.recycle(err.message);
      if (err instanceof RelayError && !err.retryable) throw new AbortError(err);
      throw err;
    }
  }

  /** Extends the running hash to `end` by reading bytes that will not be sent (they are on the receiver). */
  private async hashTo(fh: FileHandle, end: number): Promise<void> {
    const buf = Buffer.allocUnsafe(Math.min(this.opts.chunkSize, Math.max(end - this.hashedTo, 1)));
    while (this.hashedTo < end) {
      const n = await readFully(fh, buf, Math.min(buf.length, end - this.hashedTo), this.hashedTo);
      this.hash.update(buf.subarray(0, n));
      this.hashedTo += n;
    }
  }

  private async sendFrom(fh: FileHandle, transfer: string, start: number): Promise<void> {
    const { size } = this;
    const { chunkSize, window, ackTimeoutMs, bwlimit } = this.opts;
    let next = start;
    let epoch = 0;
    let checksumRejects = 0;
    let failure: unknown;
    const inflight = new Set<Promise<void>>();
    const pacingStart = Date.now();
    let paced = 0;

    const send = async (offset: number, data: Buffer, sentEpoch: number): Promise<void> => {
      const end = offset + data.length;
      try {
        const ack = await this.link.request('chunk', { transfer, offset, crc: crc32(data), data }, ackTimeoutMs);
        if (sentEpoch !== epoch) return;
        if (ack.offset >= end) {
          checksumRejects = 0;
          this.progressed(ack.offset);
        } else {
          // Not taken: a gap behind a rejected chunk. Go back to where the receiver is.
          epoch++;
          next = Math.max(ack.offset, this.acked);
        }
      } catch (err) {
        if (sentEpoch !== epoch) return;
        if (err instanceof RelayError && err.code === ErrorCode.CHECKSUM && ++checksumRejects <= MAX_CHECKSUM_REJECTS) {
          this.log.warn({ offset }, 'receiver re-requested a corrupt chunk');
          epoch++;
          next = offset;
          return;
        }
        failure ??= err;
      }
    };

    while (this.acked < size || inflight.size > 0) {
      if (failure) break;
      this.signal?.throwIfAborted();
      if (inflight.size < window && next < size) {
        const len = Math.min(chunkSize, size - next);
        const data = Buffer.allocUnsafe(len);
        await readFully(fh, data, len, next);
        if (next === this.hashedTo) {
          this.hash.update(data);
          this.hashedTo += len;
        }
        if (bwlimit > 0) {
          paced += len;
          const due = pacingStart + (paced * 1000) / bwlimit - Date.now();
          if (due > 0) await sleep(due, undefined, { signal: this.signal });
        }
        const p = send(next, data, epoch).finally(() => inflight.delete(p));
        inflight.add(p);
        this.bytesSent += len;
        next += len;
        continue;
      }
      if (inflight.size === 0) break;
      await Promise.race(inflight);
    }
    await Promise.all(inflight);
    if (failure) throw failure;
    if (this.signal?.aborted) throw createError(ErrorCode.CANCELLED, 'cancelled');
    if (this.acked < size) throw createError(ErrorCode.DISCONNECTED, `stopped at ${this.acked} of ${size} bytes`);
  }

  private async commit(transfer: string): Promise<ReceivedFrame> {
    this.setState(OutgoingState.COMMITTING);
    this.sha256 ??= this.hash.digest('hex');
    let confirmed: ReceivedFrame | undefined;
    const onReceived = (f: ReceivedFrame): void => {
      if (f.transfer === transfer) confirmed = f;
    };
    this.link.on('received', onReceived);
    try {
      // Verifying is instant on the receiver, but fsync of a large file is not.
      const timeout = this.opts.ackTimeoutMs + Math.ceil(this.size / (20 * 1024 * 1024)) * 1000;
      await this.link.request('commit', { transfer, sha256: this.sha256 }, timeout);
    } finally {
      this.link.off('received', onReceived);
    }
    // Socket.IO keeps order: the "received" event always arrives before the commit's ack.
    if (!confirmed) throw createError(ErrorCode.PROTOCOL, `receiver ${this.link.name} acked the commit without a "received" confirmation`);
    if (confirmed.sha256 !== this.sha256 || confirmed.size !== this.size || confirmed.name !== this.name) {
      throw createError(ErrorCode.CHECKSUM, `receiver ${this.link.name} confirmed ${confirmed.name} ${confirmed.size} ${confirmed.sha256}, expected ${this.name} ${this.size} ${this.sha256}`);
    }
    this.progressed(this.size);
    return confirmed;
  }
}

async function readFully(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) throw createError(ErrorCode.SOURCE_CHANGED, `file shrank while being read (at ${position + got})`);
    got += bytesRead;
  }
  return got;
}
