/**
 * Free space promised to writes not on the disk yet. The file system only counts bytes once they are
 * written, so what transfers in flight (and put batches) will still write is reserved here, and a new
 * offer must fit beside it and --min-free. Each promise is a Reservation handle: its holder shrinks it as
 * bytes land and releases it once; the running total is the sum of the live handles, never below 0.
 */
import { createError, ErrorCode, formatBytes } from '@relayer/common';

export interface Reservation {
  /** Bytes still promised. */
  readonly held: number;
  /** `bytes` of the promise are on the disk now: the file system counts them, no longer this. */
  consume(bytes: number): void;
  /** The promise becomes `bytes` (a transfer's rest, once its offset is known). */
  resize(bytes: number): void;
  /** Gives the rest back. Once: later calls (and calls after the budget closed) do nothing. */
  release(): void;
}

export class SpaceBudget {
  private total = 0;
  private readonly live = new Set<Reservation>();

  constructor(private readonly freeBytes: () => Promise<number>, private readonly minFree: number) {}

  /** Bytes promised by all live reservations. */
  get reserved(): number {
    return this.total;
  }

  /**
   * DISK_FULL unless `needed` more bytes leave --min-free beside what is promised; `own`: a reservation
   * the asker already holds and is about to replace (not counted against it).
   */
  async check(what: string, needed: number, own?: Reservation): Promise<void> {
    const free = await this.freeBytes();
    const reserved = this.total - (own && this.live.has(own) ? own.held : 0);
    if (free - reserved - needed < this.minFree) {
      // Free and promised apart: what transfers in flight will still write can be more than is free now.
      const held = reserved > 0 ? `, and transfers in flight will still write ${formatBytes(reserved)} of it` : '';
      const keep = this.minFree > 0 ? `, and --min-free keeps ${formatBytes(this.minFree)}` : '';
      throw createError(ErrorCode.DISK_FULL, `not enough space for ${what}: needs ${formatBytes(needed)} (${needed} bytes); the disk has ${formatBytes(Math.max(0, free))} free${held}${keep}`);
    }
  }

  /** Checks (as check() does) and, when the bytes fit, promises them; no await between the two. */
  async reserve(bytes: number, what: string, own?: Reservation): Promise<Reservation> {
    await this.check(what, bytes, own);
    return this.take(bytes);
  }

  /** Every live reservation is released (the receiver is closing): the total is 0 and stays so for them. */
  close(): void {
    for (const r of [...this.live]) r.release();
  }

  private take(bytes: number): Reservation {
    let held = 0;
    let released = false;
    const set = (n: number): void => {
      if (released) return;
      const next = n > 0 ? n : 0;
      this.total += next - held;
      held = next;
    };
    const reservation: Reservation = {
      get held() {
        return held;
      },
      consume: (n) => set(held - Math.min(Math.max(0, n), held)),
      resize: set,
      release: () => {
        set(0);
        released = true;
        this.live.delete(reservation);
      },
    };
    this.live.add(reservation);
    set(bytes);
    return reservation;
  }
}
