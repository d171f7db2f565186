/**
 * The one place that decides whether a failed attempt of a transfer is retried, and after how long.
 * Retryable codes only; never past --timeout without progress; backoff grows with every attempt that made
 * no progress (acked bytes, not a resume offset) and starts over after one that did.
 */
import { RelayError } from '@relayer/common';

export interface RetryOptions {
  /** Give up once this long passed without progress. */
  timeoutMs: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Attempts in a row without progress before giving up even within the timeout. Default 30. */
  maxAttemptsWithoutProgress?: number;
}

export type RetryDecision = { retry: false } | { retry: true; delayMs: number };

export class RetryPolicy {
  private lastProgressAt = Date.now();
  private failuresWithoutProgress = 0;
  private readonly min: number;
  private readonly max: number;
  private readonly maxAttempts: number;

  constructor(private readonly opts: RetryOptions, private readonly random: () => number = Math.random) {
    this.min = opts.minDelayMs ?? 200;
    this.max = opts.maxDelayMs ?? 5000;
    this.maxAttempts = opts.maxAttemptsWithoutProgress ?? 30;
  }

  /** Bytes were acknowledged: the timeout and the backoff start over. */
  progressed(): void {
    this.lastProgressAt = Date.now();
    this.failuresWithoutProgress = 0;
  }

  /** Time left before the timeout without progress runs out. */
  remainingMs(): number {
    return Math.max(0, this.opts.timeoutMs - (Date.now() - this.lastProgressAt));
  }

  decide(err: unknown, signal?: AbortSignal): RetryDecision {
    if (signal?.aborted) return { retry: false };
    if (!(err instanceof RelayError) || !err.retryable) return { retry: false };
    const remaining = this.remainingMs();
    if (remaining <= 0 || this.failuresWithoutProgress >= this.maxAttempts) return { retry: false };
    const base = Math.min(this.max, this.min * 2 ** this.failuresWithoutProgress++);
    // Jitter: senders that failed together do not come back together.
    return { retry: true, delayMs: Math.min(remaining, Math.round(base * (0.5 + this.random() / 2))) };
  }
}
