/** The messages between FileHasher (main thread) and its hash-worker threads. */

/** The version of the file a digest is of: a file opened with another inode or device is refused. */
export interface FilePin {
  dev: number;
  ino: number;
  /** An fd of this process that holds that version (e.g. `/proc/self/fd/N`): tried before `path`, which may name a newer file by now. */
  heldAt?: string;
}

export type HashRequest =
  | { op: 'open'; id: number; path: string; pin?: FilePin }
  /** Bytes [0, to) of the file are there: hash up to there. */
  | { op: 'extend'; id: number; to: number }
  /** The digest of bytes [0, at): extended to `at` first, or from a kept state when `at` is behind; answered with the same seq. */
  | { op: 'digest'; id: number; at: number; seq: number }
  /** The transfer paused: close the file, keep the hash. */
  | { op: 'release'; id: number }
  | { op: 'close'; id: number };

export type HashReply = { seq: number; sha256: string; error?: undefined } | { seq: number; error: string };
