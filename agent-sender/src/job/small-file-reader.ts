/**
 * Reads batches of small files whole, off the main thread (see small-file-worker.ts for why): one message
 * per batch instead of several thread-pool round trips per file. Each file comes back as its bytes and
 * sha256, 'large' (it grew past the limit since it was listed: it is then offered like any large file),
 * or the coded error that stopped it. One worker per reader, started on first use, ended after
 * `idleMs` without a read (its ~10 MB of RSS go back between jobs) and by close().
 */
import { Worker } from 'node:worker_threads';
import { createError, ErrorCode, RelayError, type ErrorCode as Code } from '@relayer/common';
import type { SourceFile } from './file-list.js';
import type { AllowRoots, FixedRoot } from './sources.js';
import type { SmallFile } from './small-files.js';

export interface ReadRequest {
  id: number;
  files: { file: string; size: number }[];
  max: number;
  /** Allowed roots to check each descriptor against; null: no check (a --direct send reads what its user can). */
  roots: FixedRoot[] | null;
  /** Only each file's sha256, size and mode come back, not its bytes (a release's manifest). */
  hashOnly?: boolean;
}

export type ReadResult =
  | { kind: 'read'; data: Uint8Array; sha256: string }
  | { kind: 'hashed'; size: number; mode: number; sha256: string }
  | { kind: 'large' }
  | { kind: 'error'; code: Code; message: string };

export interface ReadResponse {
  id: number;
  results: ReadResult[];
}

/** How long the worker waits for the next batch before it ends. */
export const READER_IDLE_MS = 5000;

export class SmallFileReader {
  private worker: Worker | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: ReadResult[]) => void; reject: (e: Error) => void }>();
  private closed = false;

  /** `allowRoots` undefined: files are read without a root check. */
  constructor(private readonly allowRoots?: AllowRoots, private readonly idleMs = READER_IDLE_MS) {}

  /** Whether a worker thread is running (it starts with a read and ends when idle). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  async read(files: readonly SourceFile[], max: number): Promise<Array<SmallFile | 'large' | RelayError>> {
    const results = await this.request(files, max, false);
    return results.map((r, i) => {
      if (r.kind === 'large') return 'large';
      if (r.kind === 'error') return new RelayError(r.code, r.message);
      if (r.kind === 'hashed') throw new Error('unreachable: a read answered with a hash only');
      const data = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length);
      return { source: { ...files[i]!, size: data.length }, sha256: r.sha256, data };
    });
  }

  /** Each file's sha256, size and mode (the same checks as read(), its bytes left in the worker). */
  async hash(files: readonly SourceFile[], max: number): Promise<Array<{ size: number; mode: number; sha256: string } | 'large' | RelayError>> {
    const results = await this.request(files, max, true);
    return results.map((r) => {
      if (r.kind === 'large') return 'large';
      if (r.kind === 'error') return new RelayError(r.code, r.message);
      if (r.kind === 'read') throw new Error('unreachable: a hash answered with the bytes');
      return { size: r.size, mode: r.mode, sha256: r.sha256 };
    });
  }

  private async request(files: readonly SourceFile[], max: number, hashOnly: boolean): Promise<ReadResult[]> {
    if (this.closed) throw createError(ErrorCode.CANCELLED, 'file reader closed');
    const id = ++this.seq;
    const req: ReadRequest = { id, files: files.map((f) => ({ file: f.file, size: f.size })), max, roots: this.allowRoots?.fixed ?? null, ...(hashOnly ? { hashOnly } : {}) };
    return new Promise<ReadResult[]>((resolve, reject) => {
      clearTimeout(this.idleTimer);
      const worker = this.ensureWorker();
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage(req);
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./small-file-worker.js', import.meta.url), { resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 } });
    worker.on('message', (res: ReadResponse) => {
      const p = this.pending.get(res.id);
      this.pending.delete(res.id);
      // Idle between jobs it must not keep the process alive; reads that wait keep it referenced.
      if (this.pending.size === 0) {
        worker.unref();
        this.idleTimer = setTimeout(() => this.endIdle(worker), this.idleMs).unref();
      }
      p?.resolve(res.results);
    });
    // A worker reports a crash twice ('error', then 'exit'); by the second, reads may be waiting on its
    // successor: retire() acts only on the current worker.
    const fail = (err: Error): void => void this.retire(worker, createError(ErrorCode.SOURCE, `file reader stopped: ${err.message}`));
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.worker = worker;
    return worker;
  }

  /** Ends an idle worker; the next read starts a new one. */
  private endIdle(worker: Worker): void {
    if (this.pending.size === 0) void this.retire(worker, createError(ErrorCode.CANCELLED, 'file reader idle'));
  }

  /** Ends `worker` if it is still the current one; the reads waiting on it fail with `error`. */
  private async retire(worker: Worker, error: Error): Promise<void> {
    if (this.worker !== worker) return;
    this.worker = undefined;
    clearTimeout(this.idleTimer);
    worker.removeAllListeners();
    worker.on('error', () => undefined);
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    await worker.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.worker) await this.retire(this.worker, createError(ErrorCode.CANCELLED, 'file reader closed'));
  }
}
