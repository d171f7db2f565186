/**
 * A send job, wherever it runs (in-process for --direct, in the agent otherwise), is a stream of these
 * events; one renderer turns the stream into progress bars, plain lines or JSON lines.
 */
import type { ActionResult, ErrorCode } from '@relayer/common';

/** What an entry of a folder that is not sent is. */
export const SkipKind = {
  SYMLINK: 'symlink',
  FIFO: 'FIFO',
  SOCKET: 'socket',
  CHAR_DEVICE: 'character device',
  BLOCK_DEVICE: 'block device',
  OTHER: 'special file',
} as const;
export type SkipKind = (typeof SkipKind)[keyof typeof SkipKind];

/** An entry of a folder that is not a regular file, so not sent (the send does not fail for it). */
export interface SkippedEntry {
  /** The name it would have had on the receiver. */
  name: string;
  kind: SkipKind;
  reason: string;
}

/** "2 symlinks, 1 FIFO": what a list of skipped entries holds, by kind. */
export function describeSkipped(skipped: readonly SkippedEntry[]): string {
  const counts = new Map<SkipKind, number>();
  for (const s of skipped) counts.set(s.kind, (counts.get(s.kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${n} ${kind}${n === 1 ? '' : 's'}`).join(', ');
}

/** An entry that should have been sent and cannot be: it fails on every target (a 'failed' event each). */
export interface UnsendableEntry {
  name: string;
  code: ErrorCode;
  message: string;
}

export interface JobFileEvent {
  target: string;
  name: string;
  size: number;
}

export type JobEvent =
  | {
    type: 'queued'; files: number; bytes: number; targets: string[]; skipped: SkippedEntry[];
    /** Entries that cannot be sent: each fails on every target right after this event. */
    unsendable: number;
  }
  /** A target's link as the job starts and whenever it changes while the job runs (why a target waits). */
  | { type: 'target'; target: string; state: 'connected' | 'stale' | 'disconnected' | 'closed'; reason?: string }
  | ({ type: 'start' } & JobFileEvent)
  | ({ type: 'progress'; acked: number } & JobFileEvent)
  | ({
    type: 'received'; sha256: string; path: string; unchanged: boolean; bytesSent: number; resumedFrom: number; elapsedMs: number;
    /** The receiver's node name and the file's path on that node's host (when the receiver knows it). */
    node?: string; displayPath?: string;
    /** It travelled whole with other small files in one put frame (a start event came before, no progress events). */
    small?: boolean;
  } & JobFileEvent)
  | ({ type: 'failed'; code: ErrorCode; message: string } & JobFileEvent)
  /**
   * A release's steps on one target: staged (every file verified and durable there), switched (`current`
   * points at it), discarded (another target could not stage, so this one never switched), rolled back
   * (`current` points back at `previous`), failed (with the code and why).
   */
  | {
    type: 'release'; target: string; release: string; id: string;
    phase: 'staged' | 'switched' | 'discarded' | 'rolled-back' | 'failed';
    files?: number; bytes?: number; linked?: number; previous?: string | null; code?: ErrorCode; message?: string;
  }
  /** A node action ran on a target: its result is part of that target's confirmation. */
  | ({ type: 'action'; target: string; /** ACTION_FAILED when not ok. */ code?: ErrorCode } & ActionResult)
  | {
    type: 'done'; ok: boolean; confirmed: number; failed: number; bytes: number; elapsedMs: number;
    /** Entries not sent because they are not regular files (listed in 'queued'). */
    skipped: number;
  };

export type JobEventType = JobEvent['type'];
