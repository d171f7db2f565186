/** Holds a transfer to its --bwlimit: each chunk is released when the bytes before it are due. */
import { setTimeout as sleep } from 'node:timers/promises';

export class Pacer {
  private readonly startedAt = Date.now();
  private bytes = 0;

  /** bytesPerSecond 0 means unlimited. */
  constructor(private readonly bytesPerSecond: number) {}

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSecond <= 0) return;
    this.bytes += bytes;
    const due = this.startedAt + (this.bytes * 1000) / this.bytesPerSecond - Date.now();
    if (due > 0) await sleep(due, undefined, { signal });
  }
}
