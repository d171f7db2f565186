/**
 * How a transfer ends: the one event its registry reacts to (and the receiver's metrics count). A transfer
 * ends each attachment once: RELEASED when its partial is kept for a resume (a later offer attaches it
 * again), or with one of the final outcomes, after which nothing attaches it again. So a transfer's ends
 * are some RELEASED, then at most one final.
 */
import type { ErrorCode } from '@relayer/common';

export const Outcome = {
  /** Verified, fsynced and renamed under its name. */
  PUBLISHED: 'published',
  /** The final file already held these bytes: the partial is dropped, nothing is written. */
  UNCHANGED: 'unchanged',
  /** Refused with a coded error, its partial removed. The sender may still retry the file (see metrics.ts). */
  REFUSED: 'refused',
  /** A newer version of the file (an offer or a put of its name) replaced it, its partial removed. */
  SUPERSEDED: 'superseded',
  /** Let go with its partial (and running hash) kept for a resume. */
  RELEASED: 'released',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** Why an attachment was let go with the partial kept (the words are what the log says). */
export const Release = {
  CONNECTION_LOST: 'connection lost: partial kept for resume',
  IDLE: 'idle: released, partial kept for resume',
  ABORTED: 'aborted by sender: partial kept',
  OFFER_FAILED: 'offer failed: partial kept',
  TAKEN_OVER: 'taken over by a new offer for the same file',
  OFFERED_AGAIN: 'offered again: the old lease ends',
  CLOSING: 'receiver closing: partial kept',
} as const;
export type Release = (typeof Release)[keyof typeof Release];

/**
 * `lease`: the one its sender held when it ended; none when no sender held it then, nor for a put's file
 * or an offer refused before it had a transfer.
 */
export type TransferEnd =
  | {
    outcome: typeof Outcome.PUBLISHED | typeof Outcome.UNCHANGED; lease?: string;
    /** Since its last attach; none for a put's file. */ durationMs?: number;
    /** A put's file: the bytes it brought (a chunked transfer's are counted chunk by chunk). */ bytes?: number;
  }
  | { outcome: typeof Outcome.REFUSED; code: ErrorCode; lease?: string }
  | { outcome: typeof Outcome.SUPERSEDED; lease?: string }
  | { outcome: typeof Outcome.RELEASED; why: Release; lease: string };

export type FinalEnd = Exclude<TransferEnd, { outcome: typeof Outcome.RELEASED }>;

/** Hears every end of a transfer, synchronously, at the moment it ends. */
export type EndListener<T> = (transfer: T, end: TransferEnd) => void;
