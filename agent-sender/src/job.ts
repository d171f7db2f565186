/**
 * Runs a send job: every file to every target, fanned out so one file goes to all targets at once.
 * Reports through JobEvents only.
 *
 * Each target gets up to `filesInFlight` files of the job at once (default 16) over its one link: for
 * small files the cost is round trips (offer, chunk, commit) and the receiver's fsync of each file, and
 * both overlap when several files are in flight (the receiver's filesystem groups concurrent fsyncs into
 * one journal commit). A file is still confirmed only by its own "received" frame, after the receiver
 * matched its sha256 and made it durable under its final name. Files over SMALL_FILE_MAX also take a
 * slot of the shared `limit` (they keep a window of chunks in memory), so memory stays bounded:
 * at most filesInFlight × SMALL_FILE_MAX per target plus `limit` windows over all jobs.
 */
import { getMaxListeners, setMaxListeners } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { ErrorCode, toRelayError, type Logger } from '@relayer/common';
import type { JobEvent } from './job-events.js';
import type { Link } from './link.js';
import { OutgoingTransfer } from './outgoing-transfer.js';
import { TRANSFER_DEFAULTS, type TransferOptions } from './transfer-options.js';
import type { SourceFile } from './sources.js';

export interface JobSpec {
  files: SourceFile[];
  /** Symlinks found and not followed, reported to the user. */
  skipped?: string[];
  targets: Link[];
  transfer: Partial<TransferOptions>;
  /** How files are opened (the agent's allow-root check); default a plain open. */
  open?: (file: string) => Promise<FileHandle>;
}

/** Files up to this size (and one chunk) need no slot of the shared limit: they hold at most one chunk. */
export const SMALL_FILE_MAX = 1024 * 1024;

/** Listeners one running transfer may hold at once on its link or its signal (ready, retry, commit). */
const LISTENERS_PER_TRANSFER = 4;

export interface JobContext {
  /** Shared by the jobs of an agent: transfers of files over SMALL_FILE_MAX (or one chunk) at once. */
  limit: LimitFunction;
  logger: Logger;
  signal?: AbortSignal;
  /** Minimum gap between progress events of one transfer. Default 250ms. */
  progressEveryMs?: number;
  /** Sees each transfer while it runs (the agent's status view). */
  track?: (t: OutgoingTransfer, running: boolean) => void;
}

export async function runJob(spec: JobSpec, ctx: JobContext, emit: (e: JobEvent) => void): Promise<boolean> {
  const started = Date.now();
  const bytes = spec.files.reduce((n, f) => n + f.size, 0);
  emit({ type: 'queued', files: spec.files.length, bytes, targets: spec.targets.map((t) => t.name), skipped: spec.skipped ?? [] });
  let confirmed = 0;
  let failed = 0;
  const every = ctx.progressEveryMs ?? 250;

  const one = async (file: SourceFile, link: Link): Promise<void> => {
    const base = { target: link.name, name: file.name, size: file.size };
    if (ctx.signal?.aborted) {
      failed++;
      emit({ type: 'failed', ...base, code: ErrorCode.CANCELLED, message: 'cancelled' });
      return;
    }
    let transfer: OutgoingTransfer | undefined;
    try {
      transfer = new OutgoingTransfer({
        link, file: file.file, name: file.name, options: spec.transfer, logger: ctx.logger, signal: ctx.signal, open: spec.open,
      });
      ctx.track?.(transfer, true);
      emit({ type: 'start', ...base });
      let last = 0;
      transfer.on('progress', (p) => {
        const now = Date.now();
        if (now - last < every && p.acked < p.size) return;
        last = now;
        emit({ type: 'progress', ...base, size: p.size, acked: p.acked });
      });
      const c = await transfer.run();
      confirmed++;
      emit({
        type: 'received', target: link.name, name: c.name, size: c.size, sha256: c.sha256, path: c.path,
        unchanged: c.unchanged, bytesSent: c.bytesSent, resumedFrom: c.resumedFrom, elapsedMs: c.elapsedMs,
        ...(typeof c.node === 'string' ? { node: c.node } : {}),
        ...(typeof c.displayPath === 'string' ? { displayPath: c.displayPath } : {}),
      });
    } catch (err) {
      failed++;
      const e = toRelayError(err);
      emit({ type: 'failed', ...base, code: e.code, message: e.message });
    } finally {
      if (transfer) ctx.track?.(transfer, false);
    }
  };

  const inFlight = spec.transfer.filesInFlight ?? TRANSFER_DEFAULTS.filesInFlight;
  const smallMax = Math.min(SMALL_FILE_MAX, spec.transfer.chunkSize ?? TRANSFER_DEFAULTS.chunkSize);
  const lanes = new Map(spec.targets.map((link) => [link, pLimit(inFlight)]));
  // Each transfer in flight listens on its link (and the job's signal) for a while: raise the leak
  // warning's threshold by what this job may add, and lower it again when the job ends (an agent's links
  // are shared by concurrent jobs).
  const perSignal = LISTENERS_PER_TRANSFER * inFlight * spec.targets.length;
  for (const link of spec.targets) link.setMaxListeners(link.getMaxListeners() + LISTENERS_PER_TRANSFER * inFlight);
  if (ctx.signal) setMaxListeners(getMaxListeners(ctx.signal) + perSignal, ctx.signal);
  const tasks: Promise<void>[] = [];
  for (const file of spec.files) {
    for (const link of spec.targets) {
      tasks.push(lanes.get(link)!(() => (file.size <= smallMax ? one(file, link) : ctx.limit(() => one(file, link)))));
    }
  }
  try {
    await Promise.all(tasks);
  } finally {
    for (const link of spec.targets) link.setMaxListeners(link.getMaxListeners() - LISTENERS_PER_TRANSFER * inFlight);
    if (ctx.signal) setMaxListeners(getMaxListeners(ctx.signal) - perSignal, ctx.signal);
  }
  const ok = failed === 0 && confirmed === spec.files.length * spec.targets.length;
  emit({ type: 'done', ok, confirmed, failed, bytes, elapsedMs: Date.now() - started });
  return ok;
}
