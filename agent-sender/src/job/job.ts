/**
 * Runs a send job: every file to every target, fanned out so one file goes to all targets at once.
 * Reports through JobEvents only.
 *
 * Files up to `smallFileMax` travel whole, many per put frame (small-files.ts): each batch is read and
 * hashed once and sent to every target, a few batches in flight. A file the receiver could not take for
 * a reason worth retrying (or one that grew since it was listed) goes the offer path below instead.
 * A larger file goes to each target as its own transfer (each reads its chunks as its receiver takes
 * them), but all of them share one running sha256 (SharedHashes): the file is hashed once.
 *
 * Each target gets up to `filesInFlight` files of the job at once (default 16) over its one link: for
 * small files the cost is round trips (offer, chunk, commit) and the receiver's fsync of each file, and
 * both overlap when several files are in flight (the receiver's filesystem groups concurrent fsyncs into
 * one journal commit). A file is still confirmed only by its own "received" frame, after the receiver
 * matched its sha256 and made it durable under its final name. Files over UNSLOTTED_FILE_MAX also take a
 * slot of the shared `limit` (they keep a window of chunks in memory), so memory stays bounded:
 * at most filesInFlight × UNSLOTTED_FILE_MAX per target plus `limit` windows over all jobs.
 */
import { getMaxListeners, setMaxListeners } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { ErrorCode, RelayError, toRelayError, type Logger, type ReceivedFrame } from '@relayer/common';
import { BATCHES_IN_FLIGHT, LISTENERS_PER_TRANSFER, UNSLOTTED_FILE_MAX } from '../limits.js';
import type { JobEvent, SkippedEntry, UnsendableEntry } from './job-events.js';
import type { Link } from '../link/link.js';
import { OutgoingState, OutgoingTransfer } from '../transfer/outgoing-transfer.js';
import { RetryPolicy } from '../transfer/retry-policy.js';
import { SharedHashes } from '../transfer/shared-hashes.js';
import type { ManifestCache } from './manifest-cache.js';
import { TRANSFER_DEFAULTS, type TransferOptions } from '../transfer/transfer-options.js';
import { sizeAt, type SourceFile, type SourceList } from './file-list.js';
import { SmallFileReader } from './small-file-reader.js';
import { planBatches, putBatch, type SmallFile } from './small-files.js';

export interface JobSpec {
  /** The files, each built when its turn comes (a FileList holds 100,000 in a few MB). */
  files: SourceList;
  /** Entries of the folders sent that are not regular files: reported, not sent. */
  skipped?: SkippedEntry[];
  /** Entries that cannot be sent (a folder that cannot be listed, a refused name): each fails on every target. */
  unsendable?: UnsendableEntry[];
  targets: Link[];
  transfer: Partial<TransferOptions>;
  /** How files are opened (the agent's allow-root check); default a plain open. */
  open?: (file: string) => Promise<FileHandle>;
}


/** What `relay status` shows of a running transfer (an OutgoingTransfer, or a put batch to one target). */
export interface TransferView {
  readonly receiver: string;
  readonly name: string;
  readonly size: number;
  readonly acked: number;
  readonly state: string;
}

export interface JobContext {
  /** Shared by the jobs of an agent: transfers of files over UNSLOTTED_FILE_MAX (or one chunk) at once. */
  limit: LimitFunction;
  logger: Logger;
  signal?: AbortSignal;
  /** Minimum gap between progress events of one transfer. Default 250ms. */
  progressEveryMs?: number;
  /**
   * Reads small files whole (the agent's, with its allow-roots; it must check what `open` checks). Default:
   * one for this job, without a root check, closed when the job ends.
   */
  reader?: SmallFileReader;
  /** Running sha256s shared by the transfers of one version of a file (the agent's, across its jobs). Default: one for this job. */
  hashes?: SharedHashes;
  /** sha256s of the files release manifests hashed (the agent's, across its jobs): an unchanged file is not read again. */
  manifests?: ManifestCache;
  /** Sees each transfer while it runs (the agent's status view). */
  track?: (t: TransferView, running: boolean) => void;
}

export async function runJob(spec: JobSpec, ctx: JobContext, emit: (e: JobEvent) => void): Promise<boolean> {
  const started = Date.now();
  let bytes = 0;
  for (let i = 0; i < spec.files.length; i++) bytes += sizeAt(spec.files, i);
  const skipped = spec.skipped ?? [];
  const unsendable = spec.unsendable ?? [];
  emit({ type: 'queued', files: spec.files.length, bytes, targets: spec.targets.map((t) => t.name), skipped, unsendable: unsendable.length });
  // Each target's link now and as it changes: a target that is down shows as waiting, and why.
  const watchers = spec.targets.map((link) => {
    const tell = (): void => emit({ type: 'target', target: link.name, state: link.state, ...(link.state !== 'connected' && link.lastError ? { reason: link.lastError.message } : {}) });
    tell();
    link.on('state', tell);
    return () => link.off('state', tell);
  });
  let confirmed = 0;
  let failed = 0;
  for (const entry of unsendable) {
    for (const link of spec.targets) {
      failed++;
      emit({ type: 'failed', target: link.name, name: entry.name, size: 0, code: entry.code, message: entry.message });
    }
  }
  const every = ctx.progressEveryMs ?? 250;

  /** A file confirmed by `link`: the receiver's frame, and how it got there. */
  const confirm = (link: Link, r: Omit<ReceivedFrame, 'lease'>, how: { bytesSent: number; resumedFrom: number; elapsedMs: number; small?: true }): void => {
    confirmed++;
    emit({
      type: 'received', target: link.name, name: r.name, size: r.size, sha256: r.sha256, path: r.path, unchanged: r.unchanged, ...how,
      ...(typeof r.node === 'string' ? { node: r.node } : {}),
      ...(typeof r.displayPath === 'string' ? { displayPath: r.displayPath } : {}),
    });
  };
  const fail = (link: Link, file: SourceFile, e: RelayError): void => {
    failed++;
    emit({ type: 'failed', target: link.name, name: file.name, size: file.size, code: e.code, message: e.message });
  };

  const one = async (file: SourceFile, link: Link): Promise<void> => {
    const base = { target: link.name, name: file.name, size: file.size };
    if (ctx.signal?.aborted) return fail(link, file, new RelayError(ErrorCode.CANCELLED, 'cancelled'));
    let transfer: OutgoingTransfer | undefined;
    try {
      transfer = new OutgoingTransfer({
        link, file: file.file, name: file.name, options: spec.transfer, logger: ctx.logger, signal: ctx.signal, open: spec.open, hashes,
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
      confirm(link, c, { bytesSent: c.bytesSent, resumedFrom: c.resumedFrom, elapsedMs: c.elapsedMs });
    } catch (err) {
      fail(link, file, toRelayError(err));
    } finally {
      if (transfer) ctx.track?.(transfer, false);
    }
  };

  const inFlight = spec.transfer.filesInFlight ?? TRANSFER_DEFAULTS.filesInFlight;
  const unslottedMax = Math.min(UNSLOTTED_FILE_MAX, spec.transfer.chunkSize ?? TRANSFER_DEFAULTS.chunkSize);
  const smallMax = spec.transfer.smallFileMax ?? TRANSFER_DEFAULTS.smallFileMax;
  const lanes = new Map(spec.targets.map((link) => [link, pLimit(inFlight)]));
  const offered = (file: SourceFile, link: Link): Promise<void> =>
    lanes.get(link)!(() => (file.size <= unslottedMax ? one(file, link) : ctx.limit(() => one(file, link))));

  /** One batch of small files: read and hashed once, then put to every target. */
  const batch = async (files: SourceFile[]): Promise<void> => {
    if (ctx.signal?.aborted) {
      // Cancelled: the rest of the list fails without being read.
      for (const file of files) for (const link of spec.targets) fail(link, file, new RelayError(ErrorCode.CANCELLED, 'cancelled'));
      return;
    }
    const read = await reader.read(files, smallMax).catch((err: unknown) => files.map(() => toRelayError(err, ErrorCode.SOURCE)));
    const small: SmallFile[] = [];
    const later: Promise<void>[] = [];
    read.forEach((r, i) => {
      const file = files[i]!;
      if (r === 'large') later.push(...spec.targets.map((link) => offered(file, link)));
      else if (r instanceof RelayError) for (const link of spec.targets) fail(link, file, r);
      else small.push(r);
    });
    if (small.length > 0) await Promise.all(spec.targets.map((link) => putTo(link, small, later)));
    await Promise.all(later);
  };

  const putTo = async (link: Link, files: SmallFile[], later: Promise<void>[]): Promise<void> => {
    const started = Date.now();
    const view = { receiver: link.name, name: `${files[0]!.source.name}${files.length > 1 ? ` (+${files.length - 1} more)` : ''}`, size: files.reduce((n, f) => n + f.data.length, 0), acked: 0, state: OutgoingState.SENDING as string };
    ctx.track?.(view, true);
    for (const f of files) emit({ type: 'start', target: link.name, name: f.source.name, size: f.data.length });
    let results: Array<ReceivedFrame | RelayError>;
    try {
      results = await putWithRetry(link, files, spec.transfer, ctx);
    } catch (err) {
      results = files.map(() => (ctx.signal?.aborted ? new RelayError(ErrorCode.CANCELLED, 'cancelled') : toRelayError(err)));
    } finally {
      ctx.track?.(view, false);
    }
    results.forEach((r, i) => {
      const file = files[i]!.source;
      if (!(r instanceof RelayError)) {
        confirm(link, r, { bytesSent: r.unchanged ? 0 : r.size, resumedFrom: 0, elapsedMs: Date.now() - started, small: true });
      } else if (r.retryable && !ctx.signal?.aborted) {
        // Worth another try: the offer path retries and resumes on its own.
        later.push(offered(file, link));
      } else fail(link, file, r);
    });
  };

  const reader = ctx.reader ?? new SmallFileReader();
  const hashes = ctx.hashes ?? new SharedHashes();
  const isSmall = (size: number): boolean => smallMax > 0 && size <= smallMax;
  // Each transfer in flight listens on its link (and the job's signal) for a while: raise the leak
  // warning's threshold by what this job may add, and lower it again when the job ends (an agent's links
  // are shared by concurrent jobs).
  const perLink = LISTENERS_PER_TRANSFER * (inFlight + BATCHES_IN_FLIGHT);
  const perSignal = perLink * spec.targets.length;
  for (const link of spec.targets) link.setMaxListeners(link.getMaxListeners() + perLink);
  if (ctx.signal) setMaxListeners(getMaxListeners(ctx.signal) + perSignal, ctx.signal);
  // Work is taken from the list as slots free up, never queued all at once: a job of 100,000 files
  // holds only the batches and transfers in flight, not a promise and a closure per file and target.
  const batches = planBatches(only(spec.files, isSmall));
  const tasks = Array.from({ length: BATCHES_IN_FLIGHT }, () => drain(batches, batch));
  // Target by target within each round, so a file starts on every target together (A1, B1, A2, B2, ...)
  // and its transfers share one running sha256 while they last; target by target in full would queue all
  // of A's first files for the shared limit before any of B's, and hash each file once per target.
  const rests = spec.targets.map((link) => ({ link, files: only(spec.files, (size) => !isSmall(size)) }));
  for (let i = 0; i < inFlight; i++) for (const { link, files } of rests) tasks.push(drain(files, (file) => offered(file, link)));
  try {
    // Every drain ends before the job does (and before the reader closes), even when one of them threw.
    const failure = (await Promise.allSettled(tasks)).find((r) => r.status === 'rejected');
    if (failure) throw failure.reason;
  } finally {
    for (const unwatch of watchers) unwatch();
    if (!ctx.reader) await reader.close();
    for (const link of spec.targets) link.setMaxListeners(link.getMaxListeners() - perLink);
    if (ctx.signal) setMaxListeners(getMaxListeners(ctx.signal) - perSignal, ctx.signal);
  }
  const ok = failed === 0 && confirmed === spec.files.length * spec.targets.length;
  emit({ type: 'done', ok, confirmed, failed, bytes, elapsedMs: Date.now() - started, skipped: skipped.length });
  return ok;
}

/** The files whose size `keep` takes, each built only when it is taken (every target scans the whole list). */
function* only(files: SourceList, keep: (size: number) => boolean): Generator<SourceFile> {
  for (let i = 0; i < files.length; i++) if (keep(sizeAt(files, i))) yield files.at(i)!;
}

/** Runs `work` on each item of `items` in turn; several drains of one iterator share its items. */
async function drain<T>(items: Iterator<T>, work: (item: T) => Promise<void>): Promise<void> {
  for (let next = items.next(); !next.done; next = items.next()) await work(next.value);
}

/** A put of one batch, retried like a transfer's attempts (reconnect, backoff, --timeout without progress). */
async function putWithRetry(link: Link, files: SmallFile[], options: Partial<TransferOptions>, ctx: JobContext): Promise<Array<ReceivedFrame | RelayError>> {
  const timeoutMs = options.timeoutMs ?? TRANSFER_DEFAULTS.timeoutMs;
  const ackTimeoutMs = options.ackTimeoutMs ?? TRANSFER_DEFAULTS.ackTimeoutMs;
  const retry = new RetryPolicy({ timeoutMs });
  return retry.run(async () => {
    if (ctx.signal?.aborted) throw new RelayError(ErrorCode.CANCELLED, 'cancelled');
    await link.ready(Math.max(1, retry.remainingMs()), ctx.signal);
    try {
      // The receiver fsyncs every file before it answers: allow for a slow disk.
      return await putBatch(link, files, ackTimeoutMs + 250 * files.length);
    } catch (err) {
      if (err instanceof RelayError && err.code === ErrorCode.TIMEOUT) link.recycle(err.message);
      throw err;
    }
  }, ctx.signal, ({ error, attemptNumber }) => {
    ctx.logger.warn({ receiver: link.name, files: files.length, code: (error as RelayError).code, attempt: attemptNumber }, 'put attempt failed');
  });
}
