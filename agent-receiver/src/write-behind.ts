/**
 * Flushes a partial to the disk while it is still arriving: after every `every` bytes written, one
 * datasync runs in the background (never two at once, never in the way of the next write). Without it
 * the whole file sits dirty in the page cache until the commit's fsync, which then writes all of it
 * while the sender waits (~0.5 s per GiB on the machines measured; more on an SD card). The commit's fsync
 * still runs and is what makes the file durable; this only leaves it less to do.
 *
 * A failed flush is reported once, through `onError`: Linux reports a writeback error to one fsync per
 * descriptor, so the commit's own fsync would not see it again and must not be trusted alone.
 */
import type { FileHandle } from 'node:fs/promises';

export class WriteBehind {
  private since = 0;
  private pending: Promise<void> | undefined;

  constructor(private readonly fh: FileHandle, private readonly every: number, private readonly onError: (err: unknown) => void) {}

  /** `bytes` more were written through this descriptor. */
  wrote(bytes: number): void {
    if (!(this.every > 0)) return;
    this.since += bytes;
    if (this.since < this.every || this.pending) return;
    this.since = 0;
    this.pending = this.fh.datasync().then(
      () => { this.pending = undefined; },
      (err: unknown) => {
        this.pending = undefined;
        this.onError(err);
      },
    );
  }

  /** Resolves once no flush is running (before the commit's fsync, or before the descriptor closes). */
  async settle(): Promise<void> {
    await this.pending;
  }
}
