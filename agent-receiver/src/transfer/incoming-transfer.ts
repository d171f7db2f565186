/**
 * One file arriving: offered → receiving → verifying → published | refused, or abandoned (partial kept,
 * resumable) when its connection goes away. Chunks are accepted only at the contiguous offset (the link
 * is ordered, so anything else is a gap after a rejected chunk and the sender rewinds), which lets the
 * sha256 be computed incrementally as bytes are written (on a hash thread, from the file: see
 * file-hasher.ts): verifying a commit waits at most for the last chunks to be hashed, and flushed to the
 * disk as it arrives (write-behind.ts): the commit's fsync waits at most for the last ones to be written.
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
import type { FileDigest } from '../hashing/file-hasher.js';
import type { OpenedPartial, PartialStore } from '../store/partial-store.js';
import { writeChunk } from './sparse-write.js';
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
  /** The transfer refused itself, outside any request (a background flush failed): stop holding it. */
  onDropped: (t: IncomingTransfer) => void;
}

export class IncomingTransfer {
  readonly name: string;
  readonly identity: SourceIdentity;
  readonly key: string;
  /** Current lease: the id the sender's chunks and commit must carry. Changes on every (re)attach. */
  lease: string;
  /** Who holds the lease; undefined while abandoned. Set only by the registry. */
  owner: Owner | undefined;
  /** Free space this transfer has reserved (the registry's running total includes it). */
  reserved = 0;
  state: TransferState = TransferState.OFFERED;
  /** Bytes accepted (hashed, write queued). */
  private accepted: number;
  /** Bytes written to the file; what acks report. */
  written: number;
  /** Bytes the writes of this run put on the disk: `written` less the holes left (see sparse-write.ts). */
  stored = 0;
  /** What the source takes on the sender's disk when it is sparse (its offer says so); undefined when it is not. */
  private allocated: number | undefined;
  lastActivity = Date.now();
  private readonly store: PartialStore;
  private fh: FileHandle | undefined;
  /** Flushes `fh` in the background as it fills; one per open descriptor. */
  private flusher: WriteBehind | undefined;
  private readonly flushEvery: number;
  private readonly flushSlots: FlushSlots;
  private readonly onDropped: (t: IncomingTransfer) => void;
  /** The one refusal: every caller waits for its partial to be gone (a new offer of the name reuses its key). */
  private refusing: Promise<void> | undefined;
  private digest: FileDigest;
  /** sha256 of the bytes held when the current lease attached (what a resume offer reports). */
  private prefix: string | undefined;
  private writes: Promise<void> = Promise.resolve();
  private writeError: unknown;
  log: Logger;

  constructor(init: IncomingTransferInit) {
    this.name = init.name;
    this.identity = init.identity;
    this.store = init.store;
    this.key = init.partial.key;
    this.fh = init.partial.fh;
    this.flushEvery = init.flushEvery;
    this.flushSlots = init.flushSlots;
    this.onDropped = init.onDropped;
    this.digest = init.partial.digest;
    this.accepted = this.written = init.partial.offset;
    this.lease = '';
    this.owner = undefined;
    this.log = init.log;
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
    return Math.max(0, Math.min(this.size - this.written, this.allocated ?? Infinity));
  }

  /** Still holds a partial that a later offer may resume. */
  get resumable(): boolean {
    return this.state === TransferState.OFFERED || this.state === TransferState.RECEIVING || this.state === TransferState.ABANDONED;
  }

  private expect(action: string, ...allowed: TransferState[]): void {
    if (!allowed.includes(this.state)) {
      throw createError(ErrorCode.PROTOCOL, `cannot ${action} transfer of ${this.name}: it is ${this.state}`);
    }
  }

  /**
   * Gives the transfer to a (new) connection. The lease changes before anything is awaited, so from here
   * on the previous owner's chunks are refused; then the writes already accepted drain, and the offset
   * reported is exactly what is on disk and in the hash.
   */
  async attach(owner: Owner, source: { allocated?: number } = {}): Promise<number> {
    // Dropped (a failed flush) while its offer awaited: the sender offers again and starts over.
    if (this.state === TransferState.REFUSED) throw createError(ErrorCode.UNKNOWN_TRANSFER, `the partial of ${this.name} was dropped: offer it again`);
    this.expect('attach', TransferState.OFFERED, TransferState.RECEIVING, TransferState.ABANDONED);
    const lease = this.lease = randomUUID();
    this.state = TransferState.RECEIVING;
    this.allocated = source.allocated;
    this.log = owner.log.child({ lease, file: this.name });
    let pending: Promise<void>;
    do {
      pending = this.writes;
      await pending;
    } while (pending !== this.writes);
    if (this.writeError) throw this.writeError;
    // Released (connection closed, idle) or taken over while the writes drained: not ours to reopen.
    if (this.lease !== lease || this.state !== TransferState.RECEIVING) throw createError(ErrorCode.UNKNOWN_TRANSFER, 'transfer moved on while it was attached');
    if (!this.fh) this.fh = await this.reopen();
    this.accepted = this.written;
    try {
      this.prefix = this.written > 0 ? await this.digest.digest(this.written) : undefined;
    } catch (err) {
      // The next attach hashes the partial again from the disk rather than report this failure forever.
      this.digest.close();
      this.digest = this.store.digestOf(this.key, this.written, this.size);
      throw err;
    }
    if (this.lease !== lease || this.state !== TransferState.RECEIVING) throw createError(ErrorCode.UNKNOWN_TRANSFER, 'transfer moved on while it was attached');
    this.touch();
    return this.written;
  }

  /** sha256 of the bytes held when this lease attached (no chunk of it can have arrived before its offer's reply). */
  prefixSha256(): string {
    if (this.prefix === undefined) throw createError(ErrorCode.IO, `no prefix digest for ${this.name}: it holds no bytes`);
    return this.prefix;
  }

  private async reopen(): Promise<FileHandle> {
    const fh = await open(this.store.dataPath(this.key), 'r+');
    const size = (await fh.stat()).size;
    if (size !== this.written) {
      // Someone touched the partial while it was idle: trust the disk, not memory.
      await fh.truncate(Math.min(size, this.written));
      this.written = Math.min(size, this.written);
      this.digest.close();
      this.digest = this.store.digestOf(this.key, this.written, this.size);
    }
    return fh;
  }

  touch(): void {
    this.lastActivity = Date.now();
  }

  /** Receiving under this lease: its requests may act on the transfer. */
  holds(lease: string): boolean {
    return this.lease === lease && this.state === TransferState.RECEIVING;
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
      await this.refuse();
      throw createError(ErrorCode.OFFSET, `chunk ${frame.offset}+${frame.data.length} is outside the offered size ${this.size}`);
    }
    if (frame.offset !== this.accepted) {
      // A duplicate (already have it) or a gap (a chunk before it was refused): either way, not taken.
      await this.writes;
      return { offset: this.written, taken: false };
    }
    if (crc32(frame.data) !== frame.crc) {
      this.log.warn({ offset: frame.offset, length: frame.data.length }, 'chunk crc32 mismatch: re-requesting it');
      throw createError(ErrorCode.CHECKSUM, `chunk at ${frame.offset} failed its crc32 check`);
    }
    this.accepted = end;
    const fh = this.fh!;
    const digest = this.digest;
    const flusher = this.flusher ??= new WriteBehind(fh, this.flushEvery, this.flushSlots, (err) => {
      // Bytes may be gone from the disk while the page cache (and so a re-hash) still shows them, and no
      // later fsync will say so: the partial cannot be trusted for a resume. Drop it now.
      this.log.error({ err }, 'flushing the partial failed: dropping it');
      this.writeError ??= err;
      void this.refuse().catch((e: unknown) => this.log.warn({ err: e }, 'dropping the partial failed'));
      this.onDropped(this);
    });
    this.writes = this.writes.then(async () => {
      if (this.writeError) return;
      try {
        const stored = await writeChunk(fh, frame.data, frame.offset, this.sparse);
        this.written = end;
        this.stored += stored;
        digest.extend(end, frame.data);
        flusher.wrote(stored);
      } catch (err) {
        this.writeError = err;
      }
    });
    await this.writes;
    if (this.writeError) {
      const e = toRelayError(this.writeError);
      await this.refuse();
      throw createError(e.code, `writing ${this.name} failed: ${e.message}`);
    }
    return { offset: this.written, taken: true };
  }

  /**
   * Verifies and publishes at finalPath (resolved by the caller under the name lock). Answers OFFSET and
   * stays open when bytes are missing, so the sender sends the rest.
   */
  async commit(sha256: string, finalPath: string): Promise<ReceivedFrame> {
    this.expect('commit', TransferState.RECEIVING);
    this.touch();
    await this.writes;
    if (this.written < this.size) {
      throw createError(ErrorCode.OFFSET, `commit at ${this.written} of ${this.size} bytes: send the rest first`);
    }
    this.state = TransferState.VERIFYING;
    let actual: string;
    try {
      actual = await this.digest.digest(this.written);
    } catch (err) {
      await this.refuse();
      throw err;
    }
    if (actual !== sha256) {
      await this.refuse();
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
      await this.refuse();
      throw err;
    }
    this.state = TransferState.PUBLISHED;
    return this.received(finalPath, sha256, false);
  }

  /** The final file already holds exactly these bytes: drop the partial and confirm it unchanged. */
  async confirmUnchanged(sha256: string, finalPath: string): Promise<ReceivedFrame> {
    this.expect('confirm', TransferState.RECEIVING);
    this.state = TransferState.PUBLISHED;
    await this.writes.catch(() => undefined);
    await this.close();
    await this.store.discard(this.key);
    return this.received(finalPath, sha256, true);
  }

  private received(path: string, sha256: string, unchanged: boolean): ReceivedFrame {
    return { lease: this.lease, name: this.name, size: this.size, sha256, path, unchanged };
  }

  /** The connection went away or the sender aborted: keep the partial (and the running hash) for a resume. */
  async abandon(): Promise<void> {
    if (!this.resumable) return;
    const lease = this.lease;
    await this.writes;
    // A newer offer may have attached while the writes drained: the transfer is no longer ours to drop.
    if (this.lease !== lease) return;
    this.state = TransferState.ABANDONED;
    this.lease = '';
    await this.close();
  }

  /**
   * Ends the transfer for good and removes its partial. Once only, and every caller waits for that one: a
   * late second call (a failed write noticed after an offer of a new version refused this transfer) must
   * not delete the new one's partial, which has the same key, and an offer that supersedes a transfer
   * being refused must not open its partial before the old one is gone.
   */
  refuse(): Promise<void> {
    if (this.state === TransferState.PUBLISHED) return Promise.resolve();
    this.refusing ??= (async () => {
      this.state = TransferState.REFUSED;
      await this.writes.catch(() => undefined);
      await this.close();
      await this.store.discard(this.key);
    })();
    return this.refusing;
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
