/**
 * One file arriving: offered → receiving → verifying → published | refused, or abandoned (partial kept,
 * resumable) when its sender lets go of it. Chunks are accepted only at the contiguous offset (the link
 * is ordered, so anything else is a gap after a rejected chunk and the sender rewinds), which lets the
 * sha256 be computed incrementally as bytes are written (on a hash thread, from the file: see
 * file-hasher.ts): verifying a commit waits at most for the last chunks to be hashed, and flushed to the
 * disk as it arrives (write-behind.ts): the commit's fsync waits at most for the last ones to be written.
 *
 * Every end is told through one callback, `onEnded` (see transfer-end.ts), at the moment it happens,
 * whoever caused it (a request, the sender letting go, a failed background flush): each attachment ends
 * once, and the transfer ends for good once.
 */
import { randomUUID } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import {
  createError, ErrorCode, toRelayError,
  type ChunkAck, type ChunkFrame, type ReceivedFrame, type SourceIdentity,
} from '@relayer/common';
import type { Owner } from '../session/owner.js';
import type { FileDigest } from '@relayer/common/file-hasher';
import type { OpenedPartial, PartialStore } from '../store/partial-store.js';
import { writeChunk } from './sparse-write.js';
import { Outcome, Release, type EndListener, type FinalEnd } from './transfer-end.js';
import { WriteBehind, type FlushSlots } from './write-behind.js';

export const TransferState = {
  OFFERED: 'offered',
  RECEIVING: 'receiving',
  VERIFYING: 'verifying',
  PUBLISHED: 'published',
  REFUSED: 'refused',
  ABANDONED: 'abandoned',
} as const;
export type TransferState = (typeof TransferState)[keyof typeof TransferState];

export const PUBLISHED_FILE_MODE = 0o644;

export interface IncomingTransferInit {
  name: string;
  identity: SourceIdentity;
  partial: OpenedPartial;
  store: PartialStore;
  log: Logger;
  /** Bytes written between background flushes of the partial; 0 leaves it all to the commit's fsync. */
  flushEvery: number;
  /** Shared by the receiver's partials: how many flush at once. */
  flushSlots: FlushSlots;
  /** Hears each end of this transfer (see transfer-end.ts). */
  onEnded: EndListener<IncomingTransfer>;
}

/** One sender's hold on the transfer: the lease its chunks and commit carry, and since when. */
interface Attachment {
  readonly lease: string;
  readonly at: number;
}

export class IncomingTransfer {
  readonly name: string;
  readonly identity: SourceIdentity;
  readonly key: string;
  private now: TransferState = TransferState.OFFERED;
  /** Changes on every (re)attach; undefined while no sender holds the transfer. */
  private attachment: Attachment | undefined;
  /** Bytes accepted (hashed, write queued). */
  private accepted: number;
  /** Bytes written to the file; what acks report. */
  private bytesWritten: number;
  /** Bytes the writes put on the disk (holes left out: see sparse-write.ts) and not yet taken by storedSince(). */
  private bytesStored = 0;
  /** What the source takes on the sender's disk when it is sparse (its offer says so); undefined when it is not. */
  private allocated: number | undefined;
  private touchedAt = Date.now();
  private readonly store: PartialStore;
  private fh: FileHandle | undefined;
  /** Flushes `fh` in the background as it fills; one per open descriptor. */
  private flusher: WriteBehind | undefined;
  private readonly flushEvery: number;
  private readonly flushSlots: FlushSlots;
  private readonly onEnded: EndListener<IncomingTransfer>;
  /**
   * Set once it ended for good: what is left to do on the disk (the partial's removal). Every later end
   * waits for it: a new offer of the name reuses the key, so it must not open the partial being removed.
   */
  private gone: Promise<void> | undefined;
  private digest: FileDigest;
  /** sha256 of the bytes held when the current lease attached (what a resume offer reports). */
  private prefix: string | undefined;
  private writes: Promise<void> = Promise.resolve();
  private writeError: unknown;
  private logger: Logger;

  constructor(init: IncomingTransferInit) {
    this.name = init.name;
    this.identity = init.identity;
    this.store = init.store;
    this.key = init.partial.key;
    this.fh = init.partial.fh;
    this.flushEvery = init.flushEvery;
    this.flushSlots = init.flushSlots;
    this.onEnded = init.onEnded;
    this.digest = init.partial.digest;
    this.accepted = this.bytesWritten = init.partial.offset;
    this.logger = init.log;
  }

  get state(): TransferState {
    return this.now;
  }

  get log(): Logger {
    return this.logger;
  }

  get written(): number {
    return this.bytesWritten;
  }

  /**
   * Bytes put on the disk since the last call (the reservation's share of them is used up). Counted per
   * write, not per request: chunks in flight together would otherwise each count the others' bytes.
   */
  storedSince(): number {
    const n = this.bytesStored;
    this.bytesStored = 0;
    return n;
  }

  get lastActivity(): number {
    return this.touchedAt;
  }

  get size(): number {
    return this.identity.size;
  }

  /** Its source is sparse: all-zero blocks are left as holes. */
  get sparse(): boolean {
    return this.allocated !== undefined;
  }

  /** Disk space the rest of the file will take at most as far as its offer tells: less than its bytes when the source is sparse. */
  get toStore(): number {
    return Math.max(0, Math.min(this.size - this.bytesWritten, this.allocated ?? Infinity));
  }

  /** Still holds a partial that a later offer may resume. */
  get resumable(): boolean {
    return this.now === TransferState.OFFERED || this.now === TransferState.RECEIVING || this.now === TransferState.ABANDONED;
  }

  /** Once it ended for good: resolves when its partial is gone (removed or published), never rejects. */
  whenGone(): Promise<void> {
    return (this.gone ?? Promise.resolve()).catch(() => undefined);
  }

  private expect(action: string, ...allowed: TransferState[]): void {
    if (!allowed.includes(this.now)) {
      throw createError(ErrorCode.PROTOCOL, `cannot ${action} transfer of ${this.name}: it is ${this.now}`);
    }
  }

  /**
   * Gives the transfer to a (new) sender. The lease changes at once (an attachment still holding it ends,
   * told as `replacing`), so from here on the previous lease's chunks are refused; `ready()` resolves once
   * the writes already accepted drained, with the offset: exactly what is on disk and in the hash.
   */
  attach(owner: Owner, source: { allocated?: number } = {}, replacing: Release = Release.OFFERED_AGAIN): { lease: string; ready: () => Promise<number> } {
    // Dropped (a failed flush) while its offer awaited: the sender offers again and starts over.
    if (this.now === TransferState.REFUSED) throw createError(ErrorCode.UNKNOWN_TRANSFER, `the partial of ${this.name} was dropped: offer it again`);
    this.expect('attach', TransferState.OFFERED, TransferState.RECEIVING, TransferState.ABANDONED);
    this.letGo(replacing);
    const attachment: Attachment = { lease: randomUUID(), at: performance.now() };
    this.attachment = attachment;
    this.now = TransferState.RECEIVING;
    this.allocated = source.allocated;
    this.logger = owner.log.child({ lease: attachment.lease, file: this.name });
    return { lease: attachment.lease, ready: () => this.ready(attachment) };
  }

  private async ready(attachment: Attachment): Promise<number> {
    let pending: Promise<void>;
    do {
      pending = this.writes;
      await pending;
    } while (pending !== this.writes);
    if (this.writeError) throw this.writeError;
    // Released (connection closed, idle) or taken over while the writes drained: not ours to reopen.
    this.stillHeld(attachment);
    if (!this.fh) this.fh = await this.reopen();
    this.accepted = this.bytesWritten;
    // What is on disk now is no longer part of the rest the new reservation is sized to.
    this.bytesStored = 0;
    try {
      this.prefix = this.bytesWritten > 0 ? await this.digest.digest(this.bytesWritten) : undefined;
    } catch (err) {
      // The next attach hashes the partial again from the disk rather than report this failure forever.
      this.digest.close();
      this.digest = this.store.digestOf(this.key, this.bytesWritten, this.size);
      throw err;
    }
    this.stillHeld(attachment);
    this.touch();
    return this.bytesWritten;
  }

  private stillHeld(attachment: Attachment): void {
    if (this.attachment !== attachment || this.now !== TransferState.RECEIVING) {
      throw createError(ErrorCode.UNKNOWN_TRANSFER, 'transfer moved on while it was attached');
    }
  }

  /** sha256 of the bytes held when this lease attached (no chunk of it can have arrived before its offer's reply). */
  prefixSha256(): string {
    if (this.prefix === undefined) throw createError(ErrorCode.IO, `no prefix digest for ${this.name}: it holds no bytes`);
    return this.prefix;
  }

  private async reopen(): Promise<FileHandle> {
    const fh = await open(this.store.dataPath(this.key), 'r+');
    const size = (await fh.stat()).size;
    if (size !== this.bytesWritten) {
      // Someone touched the partial while it was idle: trust the disk, not memory.
      await fh.truncate(Math.min(size, this.bytesWritten));
      this.bytesWritten = Math.min(size, this.bytesWritten);
      this.digest.close();
      this.digest = this.store.digestOf(this.key, this.bytesWritten, this.size);
    }
    return fh;
  }

  touch(): void {
    this.touchedAt = Date.now();
  }

  /** Receiving under this lease: its requests may act on the transfer. */
  holds(lease: string): boolean {
    return this.attachment?.lease === lease && this.now === TransferState.RECEIVING;
  }

  /**
   * Takes a chunk. Resolves with the contiguous offset written and whether this chunk was taken (not when
   * it is a gap or a duplicate). Throws CHECKSUM for a corrupt chunk (the sender re-sends it), OFFSET for
   * bytes outside the offered size (the transfer is refused and its partial removed), UNKNOWN_TRANSFER
   * when the lease is no longer current.
   */
  async write(frame: ChunkFrame): Promise<ChunkAck> {
    if (!this.holds(frame.lease)) throw createError(ErrorCode.UNKNOWN_TRANSFER, 'transfer is no longer held by this lease');
    this.touch();
    const end = frame.offset + frame.data.length;
    if (end > this.size) {
      await this.refuse(ErrorCode.OFFSET);
      throw createError(ErrorCode.OFFSET, `chunk ${frame.offset}+${frame.data.length} is outside the offered size ${this.size}`);
    }
    if (frame.offset !== this.accepted) {
      // A duplicate (already have it) or a gap (a chunk before it was refused): either way, not taken.
      await this.writes;
      return { offset: this.bytesWritten, taken: false };
    }
    if (crc32(frame.data) !== frame.crc) {
      this.logger.warn({ offset: frame.offset, length: frame.data.length }, 'chunk crc32 mismatch: re-requesting it');
      throw createError(ErrorCode.CHECKSUM, `chunk at ${frame.offset} failed its crc32 check`);
    }
    this.accepted = end;
    const fh = this.fh!;
    const digest = this.digest;
    const flusher = this.flusher ??= new WriteBehind(fh, this.flushEvery, this.flushSlots, (err) => {
      // Bytes may be gone from the disk while the page cache (and so a re-hash) still shows them, and no
      // later fsync will say so: the partial cannot be trusted for a resume. Drop it now.
      this.logger.error({ err }, 'flushing the partial failed: dropping it');
      this.writeError ??= err;
      void this.refuse(toRelayError(err).code).catch((e: unknown) => this.logger.warn({ err: e }, 'dropping the partial failed'));
    });
    this.writes = this.writes.then(async () => {
      if (this.writeError) return;
      try {
        const stored = await writeChunk(fh, frame.data, frame.offset, this.sparse);
        this.bytesWritten = end;
        this.bytesStored += stored;
        digest.extend(end, frame.data);
        flusher.wrote(stored);
      } catch (err) {
        this.writeError = err;
      }
    });
    await this.writes;
    if (this.writeError) {
      const e = toRelayError(this.writeError);
      await this.refuse(e.code);
      throw createError(e.code, `writing ${this.name} failed: ${e.message}`);
    }
    return { offset: this.bytesWritten, taken: true };
  }

  /**
   * Verifies and publishes at finalPath (resolved by the caller under the name lock). Answers OFFSET and
   * stays open when bytes are missing, so the sender sends the rest.
   */
  async commit(sha256: string, finalPath: string): Promise<ReceivedFrame> {
    this.expect('commit', TransferState.RECEIVING);
    const attachment = this.attachment!;
    this.touch();
    await this.writes;
    this.stillHeld(attachment);
    if (this.bytesWritten < this.size) {
      throw createError(ErrorCode.OFFSET, `commit at ${this.bytesWritten} of ${this.size} bytes: send the rest first`);
    }
    this.now = TransferState.VERIFYING;
    let actual: string;
    try {
      actual = await this.digest.digest(this.bytesWritten);
    } catch (err) {
      await this.refuse(toRelayError(err).code);
      throw err;
    }
    if (actual !== sha256) {
      await this.refuse(ErrorCode.CHECKSUM);
      throw createError(ErrorCode.CHECKSUM, `sha256 mismatch for ${this.name}: sender says ${sha256}, received bytes hash to ${actual}`);
    }
    try {
      await this.flusher?.settle();
      // A flush that failed (now, or while the digest was awaited, which dropped the partial) lost bytes
      // the commit's fsync would report as written.
      if (this.writeError) throw this.writeError;
      // Partials are private (0600); a published file is readable by the node's other users.
      await this.fh!.chmod(PUBLISHED_FILE_MODE);
      await this.fh!.sync();
      await this.close();
      await this.store.publish(this.key, finalPath);
    } catch (err) {
      await this.refuse(toRelayError(err).code);
      throw err;
    }
    const received = this.received(attachment, finalPath, sha256, false);
    void this.endForGood({ outcome: Outcome.PUBLISHED }, TransferState.PUBLISHED, async () => undefined);
    return received;
  }

  /** The final file already holds exactly these bytes: drop the partial and confirm it unchanged. */
  async confirmUnchanged(sha256: string, finalPath: string): Promise<ReceivedFrame> {
    this.expect('confirm', TransferState.RECEIVING);
    const attachment = this.attachment!;
    // Past receiving: no chunk, commit or release acts on it while its partial is dropped.
    this.now = TransferState.VERIFYING;
    try {
      await this.writes;
      await this.close();
      await this.store.discard(this.key);
    } catch (err) {
      await this.refuse(toRelayError(err).code);
      throw err;
    }
    // Dropped meanwhile (a flush failed): it ended so already.
    if (this.gone) throw createError(ErrorCode.IO, `the partial of ${this.name} was dropped while it was confirmed: offer it again`);
    void this.endForGood({ outcome: Outcome.UNCHANGED }, TransferState.PUBLISHED, async () => undefined);
    return this.received(attachment, finalPath, sha256, true);
  }

  private received(attachment: Attachment, path: string, sha256: string, unchanged: boolean): ReceivedFrame {
    return { lease: attachment.lease, name: this.name, size: this.size, sha256, path, unchanged };
  }

  /**
   * Lets the sender's hold go (of `lease` only, when given): the partial and the running hash are kept
   * for a resume, the file closed once the writes already accepted are on it.
   */
  async release(why: Release, lease?: string): Promise<void> {
    if (!this.resumable || (lease !== undefined && this.attachment?.lease !== lease)) return;
    this.letGo(why);
    this.now = TransferState.ABANDONED;
    await this.writes;
    // Attached again while the writes drained (that offer uses the file), or refused meanwhile: not ours to close.
    if (this.now !== TransferState.ABANDONED) return;
    await this.close();
  }

  /** Ends the current attachment, if any, with the partial kept. */
  private letGo(why: Release): void {
    const attachment = this.attachment;
    if (!attachment) return;
    this.attachment = undefined;
    this.onEnded(this, { outcome: Outcome.RELEASED, why, lease: attachment.lease });
  }

  /** Ends the transfer for good with this error code and removes its partial (see endForGood). */
  refuse(code: ErrorCode): Promise<void> {
    return this.drop({ outcome: Outcome.REFUSED, code });
  }

  /** A newer version of the file replaces this one: ends it for good and removes its partial. */
  supersede(): Promise<void> {
    return this.drop({ outcome: Outcome.SUPERSEDED });
  }

  private drop(end: FinalEnd): Promise<void> {
    return this.endForGood(end, TransferState.REFUSED, async () => {
      await this.writes.catch(() => undefined);
      await this.close();
      await this.store.discard(this.key);
    });
  }

  /**
   * Once only, and every caller waits for that one: a late second end (a failed write noticed after an
   * offer of a new version superseded this transfer) must not delete the new one's partial, which has
   * the same key, nor be told twice.
   */
  private endForGood(end: FinalEnd, state: TransferState, work: () => Promise<void>): Promise<void> {
    if (this.gone) return this.gone;
    const attachment = this.attachment;
    this.attachment = undefined;
    this.now = state;
    this.gone = work();
    const lease = attachment?.lease;
    const durationMs = attachment ? performance.now() - attachment.at : undefined;
    this.onEnded(this, end.outcome === Outcome.PUBLISHED || end.outcome === Outcome.UNCHANGED ? { ...end, lease, durationMs } : { ...end, lease });
    return this.gone;
  }

  /** Closes the partial; its digest is kept while the transfer may resume, dropped once it cannot. */
  private async close(): Promise<void> {
    const fh = this.fh;
    const flusher = this.flusher;
    this.fh = undefined;
    this.flusher = undefined;
    await flusher?.settle();
    if (this.resumable) this.digest.release();
    else this.digest.close();
    await fh?.close().catch(() => undefined);
  }
}
