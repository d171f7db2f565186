/** The messages between FileHasher (main thread) and its hash-worker threads. */

export type HashRequest =
  | { op: 'open'; id: number; path: string }
  /** Bytes [0, to) of the file are written: hash up to there. */
  | { op: 'extend'; id: number; to: number }
  /** The digest of bytes [0, at), extended to `at` first; answered with the same seq. */
  | { op: 'digest'; id: number; at: number; seq: number }
  /** The transfer paused: close the file, keep the hash. */
  | { op: 'release'; id: number }
  | { op: 'close'; id: number };

export type HashReply = { seq: number; sha256: string; error?: undefined } | { seq: number; error: string };
