/**
 * Flushes a partial to the disk while it is still arriving: after every `every` bytes written, a
 * datasync runs in the background (never in the way of the next write). Without it the whole file sits
 * dirty in the page cache until the commit's fsync, which then writes all of it while the sender waits
 * (bench/RESULTS.md, "Figures behind the code"). The commit's fsync still runs and is what
 * makes the file durable; this only leaves it less to do.
 *
 * Flushes of all the receiver's partials share FlushSlots (one at a time by default): each holds a
 * thread of libuv's small pool for as long as the disk takes, and the writes, opens and stats of every
 * other transfer queue behind the pool. A partial whose turn is taken flushes at its next write instead.
 *
 * A failed flush is reported through `onError`: Linux reports a writeback error to one fsync per
 * descriptor, so the commit's own fsync would not see it again and must not be trusted alone.
 */
import type { FileHandle } from 'node:fs/promises';

/** Background flushes running at once, over all the partials of a receiver. */
export class FlushSlots {
  busy = 0;
  constructor(readonly max = 1) {}
}

export class WriteBehind {
  private since = 0;
  private pending: Promise<void> | undefined;

  constructor(
    private readonly fh: FileHandle,
    private readonly every: number,
    private readonly slots: FlushSlots,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** `bytes` more were written through this descriptor. */
  wrote(bytes: number): void {
    if (!(this.every > 0)) return;
    this.since += bytes;
    if (this.since < this.every || this.pending || this.slots.busy >= this.slots.max) return;
    this.since = 0;
    let flush: Promise<void>;
    try {
      flush = this.fh.datasync();
    } catch (err) {
      flush = Promise.reject(err);
    }
    this.slots.busy++;
    this.pending = flush.then(
      () => this.done(),
      (err: unknown) => {
        this.done();
        this.onError(err);
      },
    );
  }

  private done(): void {
    this.pending = undefined;
    this.slots.busy--;
  }

  /** Resolves once no flush is running (before the commit's fsync, or before the descriptor closes). */
  async settle(): Promise<void> {
    await this.pending;
  }
}
