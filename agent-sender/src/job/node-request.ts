/**
 * One request to one node that is not a file transfer (a release's steps, an action check or run), made
 * the way a transfer's attempts are: it waits for the link, and is retried on a retryable code (a dropped
 * connection, a timeout) until --timeout passes without an answer.
 */
import { ErrorCode, RelayError, type ReplyOf, type RequestName, type RequestOf } from '@relayer/common';
import type { Logger } from '@relayer/common';
import type { Link } from '../link/link.js';
import { RetryPolicy } from '../transfer/retry-policy.js';
import { TRANSFER_DEFAULTS, type TransferOptions } from '../transfer/transfer-options.js';

export interface NodeRequestOptions {
  /** Give up after this long without an answer (the send's --timeout). */
  timeoutMs: number;
  /** Longest wait for this one reply (the receiver may hash, fsync or run an action before answering). */
  replyTimeoutMs: number;
  signal?: AbortSignal;
  logger: Logger;
}

export function askNode<E extends RequestName>(link: Link, event: E, frame: RequestOf<E>, opts: NodeRequestOptions): Promise<ReplyOf<E>> {
  const retry = new RetryPolicy({ timeoutMs: opts.timeoutMs });
  return retry.run(async () => {
    if (opts.signal?.aborted) throw new RelayError(ErrorCode.CANCELLED, 'cancelled');
    await link.ready(Math.max(1, retry.remainingMs()), opts.signal);
    try {
      return await link.request(event, frame, opts.replyTimeoutMs);
    } catch (err) {
      if (err instanceof RelayError && err.code === ErrorCode.TIMEOUT) link.recycle(err.message);
      throw err;
    }
  }, opts.signal, ({ error, attemptNumber }) => {
    opts.logger.warn({ receiver: link.name, request: event, code: (error as RelayError).code, attempt: attemptNumber }, 'request failed: retrying');
  });
}

/** A send's --timeout and reply wait, as node requests use them. */
export function nodeRequestOptions(transfer: Partial<TransferOptions>, logger: Logger, signal?: AbortSignal): NodeRequestOptions {
  return {
    timeoutMs: transfer.timeoutMs ?? TRANSFER_DEFAULTS.timeoutMs,
    replyTimeoutMs: transfer.ackTimeoutMs ?? TRANSFER_DEFAULTS.ackTimeoutMs,
    signal,
    logger,
  };
}
