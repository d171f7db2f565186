/**
 * Serialises the offers and commits of one file name (tus' MemoryLocker is the model): an offer of another
 * version discards the partial and opens a new one, which must never happen while a commit verifies and
 * renames it. Waiting is bounded by a timeout and by the waiter's abort signal (its connection closed).
 */
import { createError, ErrorCode } from '@relayer/common';

export type Unlock = () => void;

export interface LockWait {
  timeoutMs: number;
  signal?: AbortSignal;
}

export class OfferCommitLock {
  /** Per name: settles when the last holder or waiter is done. */
  private readonly tails = new Map<string, Promise<void>>();

  get size(): number {
    return this.tails.size;
  }

  async acquire(name: string, wait: LockWait): Promise<Unlock> {
    const previous = this.tails.get(name) ?? Promise.resolve();
    let unlock!: () => void;
    const mine = new Promise<void>((resolve) => (unlock = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(name, tail);
    void tail.then(() => {
      if (this.tails.get(name) === tail) this.tails.delete(name);
    });
    try {
      await waitBounded(previous, name, wait);
    } catch (err) {
      // Our slot is given up at once; whoever queued behind us still waits for `previous`.
      unlock();
      throw err;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The holder of the newest slot: nobody waits behind it, the name is free.
      if (this.tails.get(name) === tail) this.tails.delete(name);
      unlock();
    };
  }
}

function waitBounded(p: Promise<void>, name: string, { timeoutMs, signal }: LockWait): Promise<void> {
  if (signal?.aborted) return Promise.reject(createError(ErrorCode.DISCONNECTED, 'connection closed'));
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = (): void => done(createError(ErrorCode.DISCONNECTED, 'connection closed'));
    const timer = setTimeout(() => done(createError(ErrorCode.TIMEOUT, `${name} is busy (another offer or commit of it is still running)`)), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then(() => done(), () => done());
  });
}
