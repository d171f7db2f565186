/**
 * The sender's bounds, in one place: how much of a job is in memory and in flight at once. The per-send
 * options users set (chunk size, window, files in flight, what travels whole) and their defaults are in
 * transfer/transfer-options.ts; these are fixed.
 */

/** Entries (files, skipped, unsendable) in one job: a typo like `relay send /` must not walk a whole disk. */
export const MAX_FILES_PER_JOB = 100_000;

/** lstat calls in flight while a tree's files are sized: one at a time, sizing is a visible part of a send of many files. */
export const SIZING_PARALLEL = 32;

/**
 * Files up to this size (and one chunk) need no slot of the agent's shared `--concurrency` limit: they
 * hold at most one chunk in memory. (Not to be confused with --small-max, what travels whole in a put.)
 */
export const UNSLOTTED_FILE_MAX = 1024 * 1024;

/** Put batches of one job in flight at once (each to all its targets): reading the next overlaps the fsyncs of the last. */
export const BATCHES_IN_FLIGHT = 4;

/**
 * One put batch: at most this many files and bytes (further bounded by the protocol's MAX_PUT_FILES). Large
 * enough that the receiver has many fsyncs to group and one round trip serves many files; small enough
 * that a few batches in flight keep memory low and the link shared.
 */
export const BATCH_LIMITS = { files: 64, bytes: 1024 * 1024 } as const;

/** Listeners one running transfer may hold at once on its link or its signal (ready, retry, commit). */
export const LISTENERS_PER_TRANSFER = 4;

/** Complete running sha256s kept after their last transfer ended, for a target running behind. */
export const FINISHED_KEPT = 16;
