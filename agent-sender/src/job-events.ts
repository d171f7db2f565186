/**
 * A send job, wherever it runs (in-process for --direct, in the agent otherwise), is a stream of these
 * events; one renderer turns the stream into progress bars, plain lines or JSON lines.
 */
import type { ErrorCode } from '@relayer/common';

export interface JobFileEvent {
  target: string;
  name: string;
  size: number;
}

export type JobEvent =
  | { type: 'queued'; files: number; bytes: number; targets: string[]; skipped: string[] }
  | ({ type: 'start' } & JobFileEvent)
  | ({ type: 'progress'; acked: number } & JobFileEvent)
  | ({
    type: 'received'; sha256: string; path: string; unchanged: boolean; bytesSent: number; resumedFrom: number; elapsedMs: number;
    /** The receiver's node name and the file's path on that node's host (when the receiver knows it). */
    node?: string; displayPath?: string;
    /** It travelled whole with other small files in one put frame (a start event came before, no progress events). */
    whole?: boolean;
  } & JobFileEvent)
  | ({ type: 'failed'; code: ErrorCode; message: string } & JobFileEvent)
  | { type: 'done'; ok: boolean; confirmed: number; failed: number; bytes: number; elapsedMs: number };

export type JobEventType = JobEvent['type'];
