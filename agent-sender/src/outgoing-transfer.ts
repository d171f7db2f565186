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
  createError, definedOnly, ErrorCode, MAX_CHUNK_SIZE, RelayError,
  type Logger, type OfferAccepted, type ReceivedFrame,
} from '@relayer/common';
import type { Link } from './link.js';
import { TRANSFER_DEFAULTS, type TransferOptions } from './transfer-options.js';

export const OutgoingState = {
  OFFERING: 'offering',
  SENDING: 'sending',
  COMMITTING: 'committing',
  CONFIRMED: 'confirmed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
} as const;
export type OutgoingState = (typeof OutgoingState)[keyof typeof OutgoingState];

export interface OutgoingTransferInit {
  link: Link;
  /** Local path; opened when the transfer starts (after any queue), not before. */
  file: string;
  /** Name on the receiver. */
  name: string;
  options: Partial<TransferOptions>;
  logger: Logger;
  signal?: AbortSignal;
  /** Opens the file; the agent checks its allow-roots here, on the descriptor it will read. */
  open?: (file: string) => Promise<FileHandle>;
}

/** What must not change while a file is sent (checked after the last read, before the commit). */
interface LocalIdentity {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

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
  private hash = createHash('sha256');
  private hashedTo = 0;
  private sha256: string | undefined;
  /**
   * Every byte the receiver holds was sent or checked by this run, as long as this run kept its lease.
   * Cleared when the lease is lost (a takeover): the receiver may since hold another sender's bytes.
   */
  private vouched = false;
  /** This run held a lease and lost it to another connection. */
  private lostLease = false;
  private lastProgressAt = Date.now();
  private progressThisAttempt = false;
  private readonly opts: TransferOptions;
  private readonly log: Logger;
  private readonly link: Link;
  private readonly file: string;
  readonly name: string;
  private readonly signal: AbortSignal | undefined;
  private readonly openFile: (file: string) => Promise<FileHandle>;

  constructor(init: OutgoingTransferInit) {
    super();
    ({ link: this.link, file: this.file, name: this.name, signal: this.signal } = init);
    this.openFile = init.open ?? ((f) => open(f, 'r'));
    const { link, name, logger } = init;
    this.opts = { ...TRANSFER_DEFAULTS, ...definedOnly(init.options) };
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
      fh = await this.openFile(this.file);
    } catch (err) {
      throw this.fail(err instanceof RelayError ? err : createError(ErrorCode.SOURCE, `cannot read ${this.file}: ${(err as Error).message}`));
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw createError(ErrorCode.SOURCE, `${this.file} is not a regular file`);
      const identity: LocalIdentity = { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev };
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

  /** The file must be the one this run started with; a change means the bytes read may mix two versions. */
  private async checkUnchanged(fh: FileHandle, id: LocalIdentity): Promise<void> {
    const now = await fh.stat();
    if (now.size !== id.size || now.mtimeMs !== id.mtimeMs || now.ctimeMs !== id.ctimeMs || now.ino !== id.ino || now.dev !== id.dev) {
      throw new AbortError(createError(ErrorCode.SOURCE_CHANGED, `${this.file} changed while it was being sent: nothing was committed, send it again`));
    }
  }

  /**
   * Offers the file. When the receiver holds a prefix this run has not vouched for yet, its sha256 must
   * match ours, or the receiver is told to start over: same size and mtime do not prove same bytes.
   */
  private async offer(fh: FileHandle, id: LocalIdentity): Promise<OfferAccepted> {
    const frame = { name: this.name, size: id.size, mtimeMs: id.mtimeMs };
    const offer = await this.link.request('offer', frame, this.opts.ackTimeoutMs);
    const vouched = this.vouched || offer.offset === 0;
    this.vouched = true;
    if (vouched) return offer;
    await this.hashTo(fh, offer.offset);
    if (this.hash.copy().digest('hex') === offer.prefixSha256) return offer;
    if (this.lostLease && offer.tookOver) {
      // Another sender took this name from us and is sending other bytes under the same size and mtime:
      // it offered last, so it wins. Hand the lease straight back and stop.
      this.link.notify('abort', { lease: offer.lease });
      throw new AbortError(createError(ErrorCode.SUPERSEDED, 'another sender is now sending a different version of this file (last offer wins)'));
    }
    this.log.warn({ offset: offer.offset }, 'receiver holds different bytes under the same size and mtime: starting over');
    this.hash = createHash('sha256');
    this.hashedTo = 0;
    return this.link.request('offer', { ...frame, fresh: true }, this.opts.ackTimeoutMs);
  }

  private async attempt(fh: FileHandle, identity: LocalIdentity): Promise<ReceivedFrame> {
    this.progressThisAttempt = false;
    this.setState(OutgoingState.OFFERING);
    await this.link.ready(Math.max(1, this.opts.timeoutMs - (Date.now() - this.lastProgressAt)), this.signal);
    await this.checkUnchanged(fh, identity);
    const offer = await this.offer(fh, identity);
    // The offset the latest resume continued from (an earlier attempt of this run may have started at 0).
    if (offer.offset > 0) this.resumedFrom = offer.offset;
    // A resume offset is not progress by itself (a takeover race hands out non-zero offsets too): only
    // acked bytes are, so retries without them back off.
    this.acked = offer.offset;
    if (offer.offset > 0) this.log.info({ offset: offer.offset }, 'resuming');
    try {
      if (offer.existingSize === identity.size && offer.offset < identity.size) {
        // The receiver has a file of this size: ask whether it is these bytes before sending one.
        await this.hashTo(fh, identity.size);
        await this.checkUnchanged(fh, identity);
        this.sha256 ??= this.hash.copy().digest('hex');
        const same = await this.link.request('identical', { lease: offer.lease, sha256: this.sha256 }, this.opts.ackTimeoutMs);
        if (same.received) {
          this.progressed(this.size);
          return same.received;
        }
      }
      this.setState(OutgoingState.SENDING);
      await this.hashTo(fh, offer.offset);
      await this.sendFrom(fh, offer.lease, offer.offset);
      await this.hashTo(fh, identity.size);
      await this.checkUnchanged(fh, identity);
      return await this.commit(offer.lease);
    } catch (err) {
      if (this.signal?.aborted) {
        this.link.notify('abort', { lease: offer.lease });
        throw new AbortError(createError(ErrorCode.CANCELLED, 'cancelled'));
      }
      if (err instanceof RelayError && err.code === ErrorCode.UNKNOWN_TRANSFER) {
        this.lostLease = true;
        this.vouched = false;
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

  private async sendFrom(fh: FileHandle, lease: string, start: number): Promise<void> {
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
        const ack = await this.link.request('chunk', { lease, offset, crc: crc32(data), data }, ackTimeoutMs);
        if (sentEpoch !== epoch) return;
        if (ack.taken || ack.offset >= end) {
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
        // Offset and epoch are fixed before any await: a rewind that lands while this chunk is read or
        // paced moves `next`, and the chunk read for the old position must then be dropped, not sent
        // under the new one.
        const offset = next;
        const readEpoch = epoch;
        const len = Math.min(chunkSize, size - offset);
        const data = Buffer.allocUnsafe(len);
        await readFully(fh, data, len, offset);
        if (offset === this.hashedTo) {
          this.hash.update(data);
          this.hashedTo += len;
        }
        if (bwlimit > 0) {
          paced += len;
          const due = pacingStart + (paced * 1000) / bwlimit - Date.now();
          if (due > 0) await sleep(due, undefined, { signal: this.signal });
        }
        if (readEpoch !== epoch) continue;
        const p = send(offset, data, readEpoch).finally(() => inflight.delete(p));
        inflight.add(p);
        this.bytesSent += len;
        next = offset + len;
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

  private async commit(lease: string): Promise<ReceivedFrame> {
    this.setState(OutgoingState.COMMITTING);
    this.sha256 ??= this.hash.copy().digest('hex');
    let confirmed: ReceivedFrame | undefined;
    const onReceived = (f: ReceivedFrame): void => {
      if (f.lease === lease) confirmed = f;
    };
    this.link.on('received', onReceived);
    try {
      // Verifying is instant on the receiver, but fsync of a large file is not.
      const timeout = this.opts.ackTimeoutMs + Math.ceil(this.size / (20 * 1024 * 1024)) * 1000;
      await this.link.request('commit', { lease, sha256: this.sha256 }, timeout);
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
