/**
 * A release's manifest, built before any byte is sent: each file's name in the release, size, mode
 * (whether it is executable) and sha256. The receiver hard-links what its current release already holds
 * and is sent the rest; the manifest's sha256 is what the node checks the whole release against, so a
 * file that changes after it was hashed fails the release instead of landing in it.
 */
import { createHash } from 'node:crypto';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { entryMode, ErrorCode, RelayError, toRelayError, type ManifestEntry } from '@relayer/common';
import type { SourceFile, SourceList } from './file-list.js';
import type { ManifestCache } from './manifest-cache.js';
import type { SmallFileReader } from './small-file-reader.js';

/** Files hashed at once. */
const HASH_PARALLEL = 8;
const READ_SIZE = 1024 * 1024;
/** Files up to this size are hashed by the small-file reader's thread, WHOLE_BATCH per message. */
const WHOLE_MAX = 256 * 1024;
const WHOLE_BATCH = 256;

export interface ManifestOptions {
  /** Opens a file to hash (the agent's checks the allowed roots on the descriptor). */
  open?: (file: string) => Promise<FileHandle>;
  signal?: AbortSignal;
  /** sha256s of versions hashed before (the agent's, across its jobs): an unchanged large file is not read again. */
  cache?: ManifestCache;
  /**
   * Hashes small files off the main thread with synchronous reads (its checks must be those of `open`):
   * a tree of thousands of small files costs one message per batch instead of five thread-pool round trips per file.
   */
  reader?: SmallFileReader;
}

/** The files of a release, each under its name in the release (`rename` maps a job's name to it). */
export function releaseFiles(files: SourceList, rename: (name: string) => string): SourceList {
  return {
    length: files.length,
    at(index: number): SourceFile | undefined {
      const f = files.at(index);
      return f && { ...f, name: rename(f.name) };
    },
  };
}

/** The whole manifest (throws what stopped the hashing). */
export async function buildManifest(files: SourceList, options: ManifestOptions = {}): Promise<ManifestEntry[]> {
  const build = new ManifestBuild(files, options);
  await build.ready(files.length);
  return build.entries as ManifestEntry[];
}

/**
 * A manifest being hashed: `ready(n)` resolves once entries [0, n) are there, so a release's first parts
 * travel while the rest is hashed. Small files go in batches through the reader's thread; what it finds
 * large (or every file, without a reader) is hashed in lanes on this thread.
 */
export class ManifestBuild {
  private readonly out: ManifestEntry[];
  /** Entries [0, hashed) are there. */
  private hashed = 0;
  private failure: RelayError | undefined;
  private readonly waiters = new Set<() => void>();
  /** Settles when the hashing ended, either way (never rejects: ready() throws the failure). */
  readonly done: Promise<void>;

  constructor(private readonly files: SourceList, private readonly options: ManifestOptions = {}) {
    this.out = new Array<ManifestEntry>(files.length);
    this.done = this.hashAll().catch((err: unknown) => {
      this.failure = toRelayError(err, ErrorCode.SOURCE);
    }).finally(() => this.wake());
  }

  /** Filled in as the files are hashed. */
  get entries(): readonly ManifestEntry[] {
    return this.out;
  }

  async ready(count: number): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.hashed >= Math.min(count, this.out.length)) return;
      await new Promise<void>((resolve) => this.waiters.add(resolve));
    }
  }

  private wake(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const w of waiting) w();
  }

  private advance(): void {
    const before = this.hashed;
    while (this.hashed < this.out.length && this.out[this.hashed] !== undefined) this.hashed++;
    if (this.hashed > before) this.wake();
  }

  private async hashAll(): Promise<void> {
    const { files, out } = this;
    const { open = (f) => openFile(f, 'r'), signal, cache, reader } = this.options;
    const failed = (f: SourceFile, err: unknown): RelayError => {
      const e = toRelayError(err, ErrorCode.SOURCE);
      return new RelayError(e.code, `cannot read ${f.name} for the release manifest: ${e.message}`);
    };
    const lanes: number[] = [];
    const whole: number[] = [];
    for (let i = 0; i < files.length; i++) (reader && files.at(i)!.size <= WHOLE_MAX ? whole : lanes).push(i);
    for (let b = 0; b < whole.length; b += WHOLE_BATCH) {
      if (signal?.aborted) throw new RelayError(ErrorCode.CANCELLED, 'cancelled');
      const batch = whole.slice(b, b + WHOLE_BATCH);
      const sources = batch.map((i) => files.at(i)!);
      const results = await reader!.hash(sources, WHOLE_MAX);
      results.forEach((r, k) => {
        if (r === 'large') return void lanes.push(batch[k]!);
        if (r instanceof RelayError) throw failed(sources[k]!, r);
        out[batch[k]!] = { name: sources[k]!.name, ...r };
      });
      this.advance();
    }
    let next = 0;
    const lane = async (): Promise<void> => {
      const buf = Buffer.allocUnsafe(READ_SIZE);
      while (next < lanes.length) {
        if (signal?.aborted) throw new RelayError(ErrorCode.CANCELLED, 'cancelled');
        const i = lanes[next++]!;
        const f = files.at(i)!;
        out[i] = await hashOne(f, open, buf, cache).catch((err: unknown) => {
          throw failed(f, err);
        });
        this.advance();
      }
    };
    await Promise.all(Array.from({ length: Math.min(HASH_PARALLEL, lanes.length) }, lane));
  }
}

async function hashOne(f: SourceFile, open: (file: string) => Promise<FileHandle>, buf: Buffer, cache: ManifestCache | undefined): Promise<ManifestEntry> {
  const fh = await open(f.file);
  try {
    const st = await fh.stat({ bigint: true });
    const size = Number(st.size);
    const mode = entryMode(st.mode);
    const known = cache?.get(st);
    if (known) return { name: f.name, size, mode, sha256: known };
    const hash = createHash('sha256');
    let at = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
      // A short read of a regular file is its end: no read more to learn it.
      if (bytesRead < buf.length) break;
    }
    if (at !== size) throw new RelayError(ErrorCode.SOURCE_CHANGED, `${f.name} changed while it was hashed`);
    const sha256 = hash.digest('hex');
    cache?.set(st, sha256);
    return { name: f.name, size, mode, sha256 };
  } finally {
    await fh.close();
  }
}
