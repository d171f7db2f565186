/**
 * Runs a send job: every file to every target, fanned out so one file goes to all targets at once,
 * under a concurrency limit that may be shared with other jobs. Reports through JobEvents only.
 */
import type { FileHandle } from 'node:fs/promises';
import type { LimitFunction } from 'p-limit';
import { ErrorCode, toRelayError, type Logger } from '@relayer/common';
import type { JobEvent } from './job-events.js';
import type { Link } from './link.js';
import { OutgoingTransfer } from './outgoing-transfer.js';
import type { TransferOptions } from './transfer-options.js';
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

export interface JobContext {
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

  const tasks: Promise<void>[] = [];
  for (const file of spec.files) for (const link of spec.targets) tasks.push(ctx.limit(() => one(file, link)));
  await Promise.all(tasks);
  const ok = failed === 0 && confirmed === spec.files.length * spec.targets.length;
  emit({ type: 'done', ok, confirmed, failed, bytes, elapsedMs: Date.now() - started });
  return ok;
}
