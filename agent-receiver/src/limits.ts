/**
 * The receiver's fixed bounds, in one place: what it remembers and holds at once. The options an operator
 * sets (sizes, limits per connection, timeouts) and their defaults are in options.ts and session/admission.ts.
 */

/** What one file of a put frame counts against the connection's buffer budget, whatever its size. */
export const PUT_FILE_COST = 16 * 1024;

/** Missed beats before a sender is logged as stale; the sender uses the same rule for receivers. */
export const STALE_AFTER_BEATS = 3;

/** Addresses remembered at most; beyond this, the oldest idle ones are forgotten first. */
export const MAX_TRACKED_ADDRESSES = 10_000;

/** Leases remembered as superseded (their senders are told SUPERSEDED, a final answer). */
export const SUPERSEDED_MEMORY = 4096;

/** Files of put frames written at once, over all connections: each holds a descriptor while it is written. */
export const PUT_WRITES = 64;
