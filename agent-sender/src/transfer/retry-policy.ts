/**
 * The one place that decides whether a failed attempt of a transfer is retried, and after how long.
 * p-retry runs the loop; this policy gives it the rules: retryable codes only; never past --timeout
 * without progress; an attempt that made progress (acked bytes, not a resume offset) is retried at once
 * and does not count, one that made none counts and backs off (exponential, jittered).
 */
import pRetry, { type Options as PRetryOptions, type RetryContext } from 'p-retry';
import { RelayError } from '@relayer/common';

export interface RetryOptions {
  /** Give up once this long passed without progress. */
  timeoutMs: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Attempts without progress before giving up even within the timeout. Default 30. */
  maxAttemptsWithoutProgress?: number;
}

export class RetryPolicy {
  private lastProgressAt = Date.now();
  private progressSinceFailure = false;
  private readonly min: number;
  private readonly max: number;
  private readonly maxAttempts: number;

  constructor(private readonly opts: RetryOptions) {
    this.min = opts.minDelayMs ?? 200;
    this.max = opts.maxDelayMs ?? 5000;
    this.maxAttempts = opts.maxAttemptsWithoutProgress ?? 30;
  }

  /** Bytes were acknowledged: the timeout starts over and the failing attempt will not count. */
  progressed(): void {
    this.lastProgressAt = Date.now();
    this.progressSinceFailure = true;
  }

  /** Time left before the timeout without progress runs out. */
  remainingMs(): number {
    return Math.max(0, this.opts.timeoutMs - (Date.now() - this.lastProgressAt));
  }

  /** Whether this error may be retried at all (the attempt budget is p-retry's). */
  retryable(err: unknown, signal?: AbortSignal): boolean {
    return !signal?.aborted && err instanceof RelayError && err.retryable && this.remainingMs() > 0;
  }

  /** Runs `attempt` until it succeeds or the policy says stop; the last error is thrown as it is. */
  run<T>(attempt: (n: number) => Promise<T>, signal: AbortSignal | undefined,
    onFailedAttempt: (ctx: RetryContext) => void = () => undefined): Promise<T> {
    const options: PRetryOptions = {
      retries: this.maxAttempts,
      minTimeout: this.min,
      maxTimeout: this.max,
      factor: 2,
      // Jitter: senders that failed together do not come back together.
      randomize: true,
      signal,
      onFailedAttempt: (ctx) => {
        if (this.retryable(ctx.error, signal)) onFailedAttempt(ctx);
      },
      shouldConsumeRetry: () => {
        const progressed = this.progressSinceFailure;
        this.progressSinceFailure = false;
        return !progressed;
      },
      shouldRetry: ({ error }) => this.retryable(error, signal),
    };
    return pRetry(attempt, options);
  }
}
