/**
 * Sends bytes [start, size) as chunks, at most `window` unacknowledged at a time, over any ChunkChannel
 * (a Link in production, a fake in unit tests). The receiver takes chunks only at its contiguous offset,
 * so a chunk not taken (a gap behind a refused one) or refused as corrupt (CHECKSUM) makes the window
 * rewind explicitly: every chunk in flight from before the rewind is ignored when its ack comes back, and
 * a chunk read for an old position is dropped, never sent under the new one.
 */
import { crc32 } from 'node:zlib';
import {
  createError, ErrorCode, RelayError,
  type ChunkAck, type ChunkFrame, type Logger,
} from '@relayer/common';

export interface ChunkChannel {
  send(frame: ChunkFrame): Promise<ChunkAck>;
}

export interface ChunkWindowInit {
  lease: string;
  size: number;
  start: number;
  chunkSize: number;
  window: number;
  channel: ChunkChannel;
  /** Reads `length` bytes at `position` of the source. */
  read: (position: number, length: number) => Promise<Buffer>;
  /**
   * A chunk's bytes are no longer needed: its ack came back (its message was written out in full) or it
   * was dropped unsent. The reader may reuse them. Never called for a chunk whose request failed: its
   * message may still sit in a send queue.
   */
  release?: (data: Buffer) => void;
  /** Each chunk as first read (the running hash takes those in order). */
  onRead?: (position: number, data: Buffer) => void;
  /** Waits until a chunk of this many bytes may go (pacing). */
  pace?: (bytes: number) => Promise<void>;
  /** The receiver's contiguous offset grew. */
  onAcked: (offset: number) => void;
  log: Logger;
  signal?: AbortSignal;
  /** Corrupt chunks in a row (no progress between) before the transfer fails. Default 8. */
  maxChecksumRejects?: number;
}

export class ChunkWindow {
  /** Bytes this window put on the wire (re-sent ones included). */
  bytesSent = 0;
  /** Contiguous bytes the receiver acknowledged. */
  acked: number;
  private next: number;
  /** Bumped by every rewind: acks of chunks sent before it are stale. */
  private epoch = 0;
  private checksumRejects = 0;
  private failure: unknown;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly init: ChunkWindowInit) {
    this.acked = this.next = init.start;
  }

  /** Resolves once the receiver acknowledged every byte; rejects with the first error that is not a rewind. */
  async run(): Promise<void> {
    const { size, chunkSize, window, signal } = this.init;
    while (this.acked < size || this.inflight.size > 0) {
      if (this.failure) break;
      signal?.throwIfAborted();
      if (this.inflight.size < window && this.next < size) {
        // Position and epoch are fixed before any await: a rewind landing while this chunk is read or
        // paced moves `next`, and then this chunk must be dropped.
        const offset = this.next;
        const epoch = this.epoch;
        const length = Math.min(chunkSize, size - offset);
        const data = await this.init.read(offset, length);
        this.init.onRead?.(offset, data);
        await this.init.pace?.(length);
        if (epoch !== this.epoch) {
          this.init.release?.(data);
          continue;
        }
        const p = this.send(offset, data, epoch).finally(() => this.inflight.delete(p));
        this.inflight.add(p);
        this.bytesSent += length;
        this.next = offset + length;
        continue;
      }
      if (this.inflight.size === 0) break;
      await Promise.race(this.inflight);
    }
    await Promise.all(this.inflight);
    if (this.failure) throw this.failure;
    if (signal?.aborted) throw createError(ErrorCode.CANCELLED, 'cancelled');
    if (this.acked < size) throw createError(ErrorCode.DISCONNECTED, `stopped at ${this.acked} of ${size} bytes`);
  }

  /** Continues from `offset`: chunks in flight from before are forgotten. */
  rewind(offset: number): void {
    this.epoch++;
    this.next = offset;
  }

  private async send(offset: number, data: Buffer, epoch: number): Promise<void> {
    const end = offset + data.length;
    try {
      const ack = await this.init.channel.send({ lease: this.init.lease, offset, crc: crc32(data), data });
      this.init.release?.(data);
      if (epoch !== this.epoch) return;
      if (ack.offset > this.acked) {
        this.acked = ack.offset;
        this.checksumRejects = 0;
        this.init.onAcked(ack.offset);
      }
      // Not taken and not already held: a gap behind a refused chunk. Go back to where the receiver is.
      if (!ack.taken && ack.offset < end) this.rewind(Math.max(ack.offset, this.acked));
    } catch (err) {
      if (epoch !== this.epoch) return;
      if (err instanceof RelayError && err.code === ErrorCode.CHECKSUM && ++this.checksumRejects <= (this.init.maxChecksumRejects ?? 8)) {
        this.init.log.warn({ offset }, 'receiver re-requested a corrupt chunk');
        this.rewind(offset);
        return;
      }
      this.failure ??= err;
    }
  }
}
