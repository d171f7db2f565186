/**
 * Running sha256 digests of files, computed on worker threads (hash-worker.ts) that read the bytes from the
 * file once the main thread has written them (the receiver's partials) or read them (the sender's sources):
 * hashing was the largest CPU cost on both agents' main threads, and another core (four on a Raspberry Pi,
 * which has no SHA instructions) can do it beside the I/O. A digest covers exactly the bytes extended to,
 * in order; a resume hashes the prefix on disk the same way.
 *
 * Threads start on first use and end in close(). A thread that fails makes every digest it owed reject
 * with IO; later files get a new thread.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { createError, ErrorCode } from '../errors.js';
import type { FilePin, HashReply, HashRequest } from './hash-messages.js';

export type { FilePin } from './hash-messages.js';

/**
 * Written bytes are handed to the thread in steps of at least this much (a digest takes the rest): a
 * message per chunk cost the main thread a fifth of what hashing did.
 */
const EXTEND_STEP = 4 * 1024 * 1024;

/** A thread with no digest owed and no message for this long ends (its fds and ~10 MB go back). */
const IDLE_MS = 5_000;

export interface FileHasherOptions {
  /** Idle time after which a thread ends; it starts again when needed. Default 5 s. */
  idleMs?: number;
  /**
   * Worker threads; 0 hashes on the main thread. Default (see defaultHashThreads): 1 when there is a
   * second core, else 0.
   */
  threads?: number;
}

/**
 * One thread when there is a core beyond the main thread's, else none. A second thread would help only
 * several big transfers at once, and each thread costs its own memory (bench/RESULTS.md, "Figures behind the code").
 */
export function defaultHashThreads(): number {
  return Math.min(1, Math.max(0, os.availableParallelism() - 1));
}

/**
 * Files up to this size, received from byte 0, are hashed on the main thread from the bytes as they are
 * written: for a small file a thread's round trips and its re-reading the file cost more than hashing it
 * (bench/RESULTS.md, "Figures behind the code").
 */
export const INLINE_DIGEST_MAX = 1024 * 1024;

/** The running digest of one partial file. */
export interface FileDigest {
  /**
   * Bytes [0, to) are written: hash them in the background (a digest hashes whatever is left). `bytes` are
   * the ones just written, ending at `to` (an in-memory digest hashes those; a thread reads the file).
   */
  extend(to: number, bytes?: Uint8Array): void;
  /**
   * The sha256 (hex) of bytes [0, at). On a thread `at` may be ahead of the last extend (read on to it) or
   * behind it (read again from a kept state); on the main thread it is the last extend's. Rejects with IO
   * when the bytes could not be read.
   */
  digest(at: number): Promise<string>;
  /** The transfer paused: the file is closed, the digest so far kept. */
  release(): void;
  /** Done with this file. */
  close(): void;
}

/** One digest's slot: the thread and session id holding its hash, and how far it was extended. */
interface Slot {
  path: string;
  pin: FilePin | undefined;
  thread: Thread;
  id: number;
  /** The last extend's end, and the last one posted to the thread. */
  latest: number;
  posted: number;
}

class Thread {
  readonly worker: Worker;
  sessions = 0;
  failure: Error | undefined;
  /** Ended for being idle (not failed): its digests re-open on a new thread, re-reading from the file. */
  retired = false;
  lastUsed = Date.now();
  private readonly pending = new Map<number, { resolve: (hex: string) => void; reject: (err: Error) => void }>();
  private seq = 0;

  constructor(onGone: (t: Thread) => void) {
    this.worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    this.worker.unref();
    this.worker.on('message', (m: HashReply) => {
      const p = this.pending.get(m.seq);
      if (!p) return;
      this.pending.delete(m.seq);
      if (m.error !== undefined) p.reject(createError(ErrorCode.IO, `hashing failed: ${m.error}`));
      else p.resolve(m.sha256);
    });
    const fail = (err: Error): void => {
      if (!this.retired) this.failure ??= createError(ErrorCode.IO, `hash thread failed: ${err.message}`);
      const why = this.failure ?? createError(ErrorCode.IO, 'hash thread ended');
      for (const p of this.pending.values()) p.reject(why);
      this.pending.clear();
      onGone(this);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
  }

  get busy(): boolean {
    return this.pending.size > 0;
  }

  post(m: HashRequest): void {
    this.lastUsed = Date.now();
    if (!this.failure && !this.retired) this.worker.postMessage(m);
  }

  ask(id: number, at: number): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    this.lastUsed = Date.now();
    const seq = ++this.seq;
    return new Promise<string>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.worker.postMessage({ op: 'digest', id, at, seq } satisfies HashRequest);
    });
  }
}

/**
 * A digest on the main thread: each write's bytes are hashed as they are given; bytes not given (a resume's
 * prefix on disk) are read from the file. For small files, and for a hasher without threads.
 */
export function mainThreadDigest(path: string): FileDigest {
  const hash = createHash('sha256');
  let at = 0;
  let error: string | undefined;
  /** Reads from the file, in order; bytes given while one runs wait their turn. */
  let reading: Promise<void> | undefined;
  const take = async (to: number, bytes: Uint8Array | undefined): Promise<void> => {
    if (error || to <= at) return;
    if (bytes && to - bytes.length === at) {
      hash.update(bytes);
      at = to;
      return;
    }
    try {
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.allocUnsafe(Math.min(to - at, 1024 * 1024));
        while (at < to) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, to - at), at);
          if (bytesRead === 0) throw new Error(`${path} ends at ${at} bytes, ${to} were written`);
          hash.update(buf.subarray(0, bytesRead));
          at += bytesRead;
        }
      } finally {
        await fh.close();
      }
    } catch (err) {
      error = (err as Error).message;
    }
  };
  return {
    extend: (to, bytes) => {
      if (!reading && bytes && to - bytes.length === at && !error) {
        hash.update(bytes);
        at = to;
        return;
      }
      const step = (reading ?? Promise.resolve()).then(() => take(to, bytes));
      reading = step;
      void step.then(() => { if (reading === step) reading = undefined; });
    },
    digest: async (wanted) => {
      while (reading) await reading;
      if (error) throw createError(ErrorCode.IO, `hashing failed: ${error}`);
      if (wanted !== at) throw createError(ErrorCode.IO, `hashing failed: hashed ${at} bytes, asked for the digest at ${wanted}`);
      return hash.copy().digest('hex');
    },
    release: () => undefined,
    close: () => undefined,
  };
}

export class FileHasher {
  private readonly size: number;
  private readonly threads: Thread[] = [];
  private readonly idleMs: number;
  private idleTimer: NodeJS.Timeout | undefined;
  private nextId = 0;
  private closed = false;
  /** A digest dropped without close() (its transfer forgotten) still frees its session in the thread. */
  private readonly finalizer = new FinalizationRegistry<Slot>((s) => {
    s.thread.post({ op: 'close', id: s.id });
    s.thread.sessions--;
  });

  constructor(options: FileHasherOptions = {}) {
    this.size = Math.max(0, Math.floor(options.threads ?? defaultHashThreads()));
    this.idleMs = options.idleMs ?? IDLE_MS;
  }

  /** Threads it may run (0: every digest on the main thread). */
  get threadCount(): number {
    return this.size;
  }

  /** Threads running now (for tests and stats). */
  get running(): number {
    return this.threads.length;
  }

  /**
   * The running digest of the file at `path` (of `size` bytes when complete) that holds `offset` bytes
   * now, extended to them: on a thread, or on the main thread for a small file received from byte 0 and
   * when this hasher has no threads.
   */
  digestOf(path: string, offset: number, size: number): FileDigest {
    const digest = this.size === 0 || (offset === 0 && size <= INLINE_DIGEST_MAX) ? mainThreadDigest(path) : this.open(path);
    if (offset > 0) digest.extend(offset);
    return digest;
  }

  /**
   * A digest of `path` from byte 0 on a thread; nothing is read until it is extended. With a pin, the
   * thread reads only that version of the file (its bytes where the pin says they are held, else at `path`
   * if it is still that inode) and the digest rejects otherwise.
   */
  open(path: string, pin?: FilePin): FileDigest {
    if (this.closed) throw createError(ErrorCode.IO, 'the hasher is closed: no new digests');
    if (this.size === 0) throw createError(ErrorCode.IO, 'this hasher has no threads');
    const s = { path, pin, latest: 0, posted: 0 } as Slot;
    this.attach(s);
    let closed = false;
    let answered: { at: number; sha256: string } | undefined;
    /** On a thread that ended for being idle: a new session elsewhere, hashing again from the file. */
    const live = (): Slot => {
      if (s.thread.retired) {
        this.attach(s);
        if (s.latest > 0) s.thread.post({ op: 'extend', id: s.id, to: (s.posted = s.latest) });
      }
      return s;
    };
    const handle: FileDigest = {
      extend: (to) => {
        if (to <= s.latest) return;
        s.latest = to;
        if (to - s.posted < EXTEND_STEP) return;
        live().posted = to;
        s.thread.post({ op: 'extend', id: s.id, to });
      },
      digest: async (at) => {
        // The last answer is kept: a sender's complete hash is asked for again by every later send of that
        // version, and its thread may have ended for being idle since (it would read the whole file again).
        if (answered?.at === at) return answered.sha256;
        const sha256 = await live().thread.ask(s.id, at);
        answered = { at, sha256 };
        return sha256;
      },
      release: () => s.thread.post({ op: 'release', id: s.id }),
      close: () => {
        if (closed) return;
        closed = true;
        this.finalizer.unregister(handle);
        s.thread.post({ op: 'close', id: s.id });
        s.thread.sessions--;
      },
    };
    this.finalizer.register(handle, s, handle);
    return handle;
  }

  /** Gives the session a thread and a fresh session id there. */
  private attach(s: Slot): void {
    if (this.closed) throw createError(ErrorCode.IO, 'the hasher is closed: no new digests');
    s.thread = this.pick();
    s.id = ++this.nextId;
    s.posted = 0;
    s.thread.sessions++;
    s.thread.post({ op: 'open', id: s.id, path: s.path, ...(s.pin ? { pin: s.pin } : {}) });
  }

  /** Ends threads with nothing owed and no message for idleMs; checked while any thread runs. */
  private retireIdle(): void {
    const now = Date.now();
    for (const t of [...this.threads]) {
      if (t.busy || now - t.lastUsed < this.idleMs) continue;
      t.retired = true;
      this.threads.splice(this.threads.indexOf(t), 1);
      void t.worker.terminate();
    }
    if (this.threads.length === 0) {
      clearInterval(this.idleTimer);
      this.idleTimer = undefined;
    }
  }

  /** The least busy thread, starting one while fewer than `size` run. */
  private pick(): Thread {
    const idle = this.threads.reduce<Thread | undefined>((best, t) => (!best || t.sessions < best.sessions ? t : best), undefined);
    if (idle && (idle.sessions === 0 || this.threads.length >= this.size)) return idle;
    const thread = new Thread((gone) => {
      const i = this.threads.indexOf(gone);
      if (i >= 0) this.threads.splice(i, 1);
    });
    this.threads.push(thread);
    if (!this.idleTimer) {
      this.idleTimer = setInterval(() => this.retireIdle(), Math.max(10, Math.min(1000, this.idleMs / 2)));
      this.idleTimer.unref();
    }
    return thread;
  }

  /** Ends every thread; digests still owed reject with IO. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.idleTimer);
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
    this.threads.length = 0;
  }
}
