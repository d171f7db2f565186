/**
 * The sha256 of the file, computed once and in order as bytes are first read: chunks sent feed it, bytes
 * the receiver already holds are read just for it, and a rewind never hashes a byte twice. One running
 * hash may serve several transfers of the same version of a file (a fan-out, see SharedHashes): whichever
 * reads the next bytes first feeds them, so its methods hold no state across an await.
 *
 * Two kinds: RunningHash hashes on the main thread, from the bytes read for sending (small files, or an
 * agent without hash threads); ThreadHash (thread-hash.ts) leaves the hashing to a thread that reads the
 * file itself.
 */
import { createHash, type Hash } from 'node:crypto';

export type Read = (position: number, buf: Buffer, length: number) => Promise<void>;

/** What a transfer needs of its file's running sha256. */
export interface SourceHash {
  /** Bytes [0, hashedTo) are in the hash, or handed to the thread that hashes them. */
  readonly hashedTo: number;
  /** Bytes read at `offset` for sending; only the next bytes in order count. */
  feed(offset: number, data: Uint8Array): void;
  /** Takes the hash to at least `end`, the bytes not sent (a resume's prefix) read for it. */
  extendTo(end: number, read: Read, bufferSize: number): Promise<void>;
  /** The digest of the first `offset` bytes, wherever the hash is now. */
  digestAt(offset: number, read: Read, bufferSize: number): Promise<string>;
  /** No transfer uses it any more. */
  close(): void;
}

/** Digests kept at recent chunk ends: a receiver's offset after a lost lease is usually one of them. */
const RECENT_DIGESTS = 1024;

/** Default bytes between kept copies of the hash's state. */
export const SNAPSHOT_EVERY = 64 * 1024 * 1024;

export class RunningHash implements SourceHash {
  private readonly hash: Hash;
  /** Bytes [0, hashedTo) are in the hash. */
  hashedTo: number;
  private readonly recent = new Map<number, string>();
  /**
   * Copies of the hash's state, ascending, about every `snapshotEvery` bytes: the digest at an offset far
   * behind (a fan-out's slow receiver, a resume off the chunk grid) is then read on from the nearest one
   * instead of from byte 0. ~0.2 KB each: 1,600 for a 100 GiB file.
   */
  private readonly snapshots: Array<{ at: number; hash: Hash }> = [];

  constructor(private readonly snapshotEvery = SNAPSHOT_EVERY, from?: { at: number; hash: Hash }) {
    this.hash = from ? from.hash.copy() : createHash('sha256');
    this.hashedTo = from?.at ?? 0;
  }

  /** Feeds bytes read at `offset`; only the next bytes in order count. */
  feed(offset: number, data: Uint8Array): void {
    if (offset !== this.hashedTo) return;
    this.hash.update(data);
    this.hashedTo += data.length;
    const last = this.snapshots.at(-1)?.at ?? 0;
    if (this.hashedTo - last >= this.snapshotEvery) this.snapshots.push({ at: this.hashedTo, hash: this.hash.copy() });
    this.recent.set(this.hashedTo, this.digest());
    if (this.recent.size > RECENT_DIGESTS) this.recent.delete(this.recent.keys().next().value!);
  }

  /**
   * The digest of the first `offset` bytes, whether the running hash is behind that point (read on to it),
   * at it, or already past it (read ahead for chunks in flight): a remembered chunk end, else a re-read.
   */
  async digestAt(offset: number, read: Read, bufferSize: number): Promise<string> {
    if (offset >= this.hashedTo) {
      await this.extendTo(offset, read, bufferSize);
      if (this.hashedTo === offset) return this.digest();
      // Another user of this hash fed it past `offset` meanwhile: fall through to the past.
    }
    const known = this.recent.get(offset);
    if (known) return known;
    const from = this.snapshots.findLast((s) => s.at <= offset);
    const other = new RunningHash(Infinity, from);
    await other.extendTo(offset, read, bufferSize);
    return other.digest();
  }

  /** Extends the hash to at least `end` by reading what it lacks (bytes that will not be sent). */
  async extendTo(end: number, read: Read, bufferSize: number): Promise<void> {
    if (this.hashedTo >= end) return;
    const buf = Buffer.allocUnsafe(Math.min(bufferSize, end - this.hashedTo));
    while (this.hashedTo < end) {
      const at = this.hashedTo;
      const n = Math.min(buf.length, end - at);
      await read(at, buf, n);
      // Fed by another reader while this one read: those bytes are in already, read on from there.
      if (this.hashedTo !== at) continue;
      this.feed(at, buf.subarray(0, n));
    }
  }

  /** Hex digest of the bytes so far; the hash keeps running. */
  digest(): string {
    return this.hash.copy().digest('hex');
  }

  close(): void {
    // Nothing held outside this object.
  }
}
