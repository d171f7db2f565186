/**
 * One file to one receiver: offering → sending → committing → confirmed | failed | cancelled. It
 * orchestrates parts with one job each: LocalSource (the pinned version of the file), RunningHash (its
 * sha256, computed once in order, shared with the other transfers of that version through SharedHashes),
 * ChunkWindow (chunks in flight, explicit rewinds), Pacer (--bwlimit) and RetryPolicy (whether and when a
 * failed attempt runs again). An attempt offers the file, checks the receiver's prefix when this run cannot
 * vouch for it, asks whether the final file is already identical, sends the rest and commits; a lost
 * connection ends the attempt and the next one resumes.
 */
import { EventEmitter } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import {
  createError, definedOnly, ErrorCode, MAX_CHUNK_SIZE, MAX_WINDOW, RelayError, toRelayError,
  type Logger, type OfferAccepted, type ReceivedFrame,
} from '@relayer/common';
import { ChunkBuffers } from './chunk-buffers.js';
import { ChunkWindow } from './chunk-window.js';
import type { Link } from '../link/link.js';
import { LocalSource } from './local-source.js';
import { Pacer } from './pacer.js';
import { RetryPolicy } from './retry-policy.js';
import type { SourceHash } from './running-hash.js';
import { SharedHashes } from './shared-hashes.js';
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
  /** Where the file's running sha256 comes from: other transfers of the same version share it. Default: a private one. */
  hashes?: SharedHashes;
}

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
  /** Set once the source is open: the running hash of its version. */
  private hash!: SourceHash;
  private readonly hashes: SharedHashes;
  private sha256: string | undefined;
  /**
   * Every byte the receiver holds was sent or checked by this run, as long as this run kept its lease.
   * Cleared when an attempt fails (a takeover, a lost connection): the receiver may since hold another
   * sender's bytes.
   */
  private vouched = false;
  /** This run held a lease before (its later offers are re-offers, not a newcomer's first). */
  private heldLease = false;
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
    this.hashes = init.hashes ?? new SharedHashes();
    const { link, name, logger } = init;
    this.opts = { ...TRANSFER_DEFAULTS, ...definedOnly(init.options) };
    if (!(this.opts.chunkSize > 0 && this.opts.chunkSize <= MAX_CHUNK_SIZE)) {
      throw createError(ErrorCode.USAGE, `chunk size must be between 1 byte and ${MAX_CHUNK_SIZE}`);
    }
    if (!(this.opts.window >= 1 && this.opts.window <= MAX_WINDOW)) throw createError(ErrorCode.USAGE, `window must be between 1 and ${MAX_WINDOW}`);
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
    let source: LocalSource;
    try {
      source = await LocalSource.open(this.file, this.openFile);
    } catch (err) {
      throw this.fail(err);
    }
    this.size = source.size;
    this.hash = this.hashes.acquire(source.file, source.identity, source.heldAt);
    const retry = new RetryPolicy({ timeoutMs: this.opts.timeoutMs });
    try {
      const received = await retry.run(() => this.attempt(source, retry), this.signal, ({ error, attemptNumber }) => {
        this.log.warn({ err: error, code: (error as RelayError).code, attempt: attemptNumber, acked: this.acked }, 'attempt failed');
      });
      this.setState(OutgoingState.CONFIRMED);
      return { ...received, receiver: this.link.name, bytesSent: this.bytesSent, resumedFrom: this.resumedFrom ?? 0, elapsedMs: Date.now() - started };
    } catch (err) {
      throw this.fail(err);
    } finally {
      this.hashes.release(source.file, this.hash);
      await source.close();
    }
  }

  private fail(err: unknown): RelayError {
    const e = this.signal?.aborted && !(err instanceof RelayError) ? createError(ErrorCode.CANCELLED, 'cancelled') : toRelayError(err);
    this.setState(e.code === ErrorCode.CANCELLED ? OutgoingState.CANCELLED : OutgoingState.FAILED);
    return e;
  }

  private progressed(acked: number): void {
    if (acked <= this.acked) return;
    this.acked = acked;
    this.emit('progress', { receiver: this.link.name, name: this.name, size: this.size, acked });
  }

  /**
   * Offers the file. When the receiver holds a prefix this run cannot vouch for, its sha256 must match
   * ours, or the receiver is told to start over: same size and mtime do not prove same bytes. After a
   * takeover by another live sender with other bytes, that sender offered last: this one stops.
   */
  private async offer(source: LocalSource): Promise<OfferAccepted> {
    const { allocated } = source.identity;
    const frame = { name: this.name, size: source.size, mtimeMs: source.identity.mtimeMs, ...(allocated === undefined ? {} : { allocated }) };
    const offer = await this.link.request('offer', frame, this.opts.ackTimeoutMs);
    const vouched = this.vouched || offer.offset === 0;
    this.vouched = true;
    // A receiver cannot hold more than the file: an offset past its end would have the hash read past it.
    if (offer.offset > source.size) throw createError(ErrorCode.PROTOCOL, `receiver ${this.link.name} offered to resume ${this.name} at ${offer.offset}, past its ${source.size} bytes`);
    if (vouched) return offer;
    // Our hash may have run ahead of the receiver's offset (chunks read for the window): compare at it.
    const ours = await this.hash.digestAt(offer.offset, (position, buf, length) => source.readInto(buf, length, position), this.opts.chunkSize);
    if (ours === offer.prefixSha256) return offer;
    if (this.heldLease && offer.tookOver) {
      this.link.notify('abort', { lease: offer.lease });
      throw createError(ErrorCode.SUPERSEDED, 'another sender is now sending a different version of this file (last offer wins)');
    }
    // Our running hash stays: it is of our bytes, whatever the receiver held.
    this.log.warn({ offset: offer.offset }, 'receiver holds different bytes under the same size and mtime: starting over');
    return this.link.request('offer', { ...frame, fresh: true }, this.opts.ackTimeoutMs);
  }

  private async attempt(source: LocalSource, retry: RetryPolicy): Promise<ReceivedFrame> {
    this.setState(OutgoingState.OFFERING);
    await this.link.ready(Math.max(1, retry.remainingMs()), this.signal);
    await source.checkUnchanged();
    const offer = await this.offer(source);
    // Bound to every line of this attempt: the receiver logs the same lease, so one transfer can be
    // followed across both nodes.
    const log = this.log.child({ lease: offer.lease });
    // The offset the latest resume continued from (an earlier attempt of this run may have started at 0).
    if (offer.offset > 0) this.resumedFrom = offer.offset;
    // A resume offset is not progress by itself (a takeover race hands out non-zero offsets too): only
    // acked bytes are, so retries without them back off.
    this.acked = offer.offset;
    if (offer.offset > 0) log.info({ offset: offer.offset }, 'resuming');
    try {
      if (offer.existingSize === source.size && offer.offset < source.size) {
        // The receiver has a file of this size: ask whether it is these bytes before sending one.
        const sha256 = await this.fileSha256(source);
        const { reply, received } = await this.link.requestConfirming('identical', { lease: offer.lease, sha256 }, this.opts.ackTimeoutMs, [offer.lease]);
        if (reply.identical) {
          log.info('receiver already holds these exact bytes');
          return this.confirmed(received[0], sha256, 'its identical check');
        }
      }
      this.setState(OutgoingState.SENDING);
      await this.hashTo(source, offer.offset);
      const pacer = new Pacer(this.opts.bwlimit);
      // Sized to the file when it is smaller than a chunk: a small file must not cost a megabyte.
      const buffers = new ChunkBuffers(Math.max(1, Math.min(this.opts.chunkSize, source.size)), this.opts.window + 1);
      const window = new ChunkWindow({
        lease: offer.lease, size: source.size, start: offer.offset, chunkSize: this.opts.chunkSize, window: this.opts.window,
        channel: { send: (f) => this.link.request('chunk', f, this.opts.ackTimeoutMs) },
        read: async (position, length) => {
          const buf = buffers.take(length);
          await source.readInto(buf, length, position);
          return buf;
        },
        release: (data) => buffers.give(data),
        onRead: (position, data) => this.hash.feed(position, data),
        pace: (bytes) => pacer.take(bytes, this.signal),
        onAcked: (offset) => {
          retry.progressed();
          this.progressed(offset);
        },
        log,
        signal: this.signal,
      });
      try {
        await window.run();
      } finally {
        this.bytesSent += window.bytesSent;
      }
      return await this.commit(offer.lease, await this.fileSha256(source));
    } catch (err) {
      if (this.signal?.aborted) {
        this.link.notify('abort', { lease: offer.lease });
        throw createError(ErrorCode.CANCELLED, 'cancelled');
      }
      this.heldLease = true;
      this.vouched = false;
      if (err instanceof RelayError && err.code === ErrorCode.TIMEOUT) this.link.recycle(err.message);
      throw err;
    }
  }

  private hashTo(source: LocalSource, end: number): Promise<void> {
    return this.hash.extendTo(end, (position, buf, length) => source.readInto(buf, length, position), this.opts.chunkSize);
  }

  /** The whole file's sha256, read to the end if need be; checked to still be the version opened. */
  private async fileSha256(source: LocalSource): Promise<string> {
    if (this.sha256 === undefined) {
      try {
        this.sha256 = await this.hash.digestAt(source.size, (position, buf, length) => source.readInto(buf, length, position), this.opts.chunkSize);
      } catch (err) {
        // A hash thread that could not read the file says only that: the file's own change says more.
        await source.checkUnchanged();
        throw err;
      }
    }
    await source.checkUnchanged();
    return this.sha256;
  }

  private async commit(lease: string, sha256: string): Promise<ReceivedFrame> {
    this.setState(OutgoingState.COMMITTING);
    // Verifying is instant on the receiver, but fsync of a large file is not.
    const timeout = this.opts.ackTimeoutMs + Math.ceil(this.size / (20 * 1024 * 1024)) * 1000;
    const { received } = await this.link.requestConfirming('commit', { lease, sha256 }, timeout, [lease]);
    return this.confirmed(received[0], sha256, 'the commit');
  }

  /** The "received" that must have come before the ack of `what`: this file, these bytes, or the send fails. */
  private confirmed(received: ReceivedFrame | undefined, sha256: string, what: string): ReceivedFrame {
    // Socket.IO keeps order: the "received" event always arrives before the ack.
    if (!received) throw createError(ErrorCode.PROTOCOL, `receiver ${this.link.name} acked ${what} without a "received" confirmation`);
    if (received.sha256 !== sha256 || received.size !== this.size || received.name !== this.name) {
      throw createError(ErrorCode.CHECKSUM, `receiver ${this.link.name} confirmed ${received.name} ${received.size} ${received.sha256}, expected ${this.name} ${this.size} ${sha256}`);
    }
    this.progressed(this.size);
    return received;
  }
}
