/**
 * Buffers for the chunks of one transfer, reused: a chunk's buffer goes back only once its ack came back
 * (so its message has been written out in full) or when it was dropped unsent. Fresh megabyte buffers per
 * chunk cost page faults and garbage collection, a large share of the sender's CPU. The buffers are
 * framable (see @relayer/common's framed-bytes): the parser writes each chunk's envelope around its bytes.
 */
import { allocFramable } from '@relayer/common';

export class ChunkBuffers {
  /** Memory of each buffer this pool made → where its bytes start in it. */
  private readonly starts = new WeakMap<ArrayBufferLike, number>();
  private readonly free: ArrayBufferLike[] = [];

  /** Buffers of `size` bytes; at most `keep` are kept for reuse. */
  constructor(private readonly size: number, private readonly keep: number) {}

  /** A buffer of `length` (≤ size) bytes, not shared with any chunk still in flight. */
  take(length: number): Buffer {
    if (length > this.size) throw new RangeError(`chunk of ${length} bytes is larger than ${this.size}`);
    const reused = this.free.pop();
    if (reused) return Buffer.from(reused, this.starts.get(reused)!, length);
    const fresh = allocFramable(this.size);
    this.starts.set(fresh.buffer, fresh.byteOffset);
    return fresh.subarray(0, length);
  }

  /** Gives back a buffer from take(); nothing may use it afterwards. Anything else is ignored. */
  give(buf: Buffer): void {
    const memory = buf.buffer;
    if (this.starts.has(memory) && this.free.length < this.keep && !this.free.includes(memory)) this.free.push(memory);
  }
}
