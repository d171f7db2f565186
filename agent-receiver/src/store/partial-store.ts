/**
 * Owns `<dir>/.relay-partial/`: one `<key>.part` (the bytes so far) and one `<key>.json` (what they are)
 * per transfer in progress. Bytes are written in order, so the length of a `.part` file is the offset a
 * resume continues from; a resume re-hashes those bytes rather than trusting any stored digest.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, lstatSync, realpathSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { createError, ErrorCode, isRelayError, PARTIAL_DIR, type SourceIdentity } from '@relayer/common';
import type { FileDigest, FileHasher } from '@relayer/common/file-hasher';
import { againIfGone, fsyncDir, makeFolder } from './durable-folders.js';
import { guardInbox, isStoreFileName } from './store-guard.js';

export interface PartialMeta extends SourceIdentity {
  name: string;
  createdAt: number;
}

export interface OpenedPartial {
  key: string;
  fh: FileHandle;
  /** Bytes already held. */
  offset: number;
  /** The running sha256 of the partial, extended to `offset` (a resume hashes the bytes on disk). */
  digest: FileDigest;
  resumed: boolean;
}

export function partialKey(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 40);
}


function sameSource(meta: PartialMeta, name: string, id: SourceIdentity): boolean {
  return meta.name === name && meta.size === id.size && meta.mtimeMs === id.mtimeMs;
}

export class PartialStore {
  readonly dir: string;
  /** Keys the sweep is removing right now: offers for them wait, then start fresh. */
  private readonly removing = new Map<string, Promise<void>>();

  /** `hasher` computes the partials' running digests (off the main thread); `log` hears of a folder found unsafe while running. */
  constructor(root: string, readonly hasher: FileHasher, private readonly log?: Logger) {
    this.dir = path.join(root, PARTIAL_DIR);
  }

  /** The running digest of the partial `key` of a `size`-byte file, extended to the `offset` bytes it holds. */
  digestOf(key: string, offset: number, size: number): FileDigest {
    return this.hasher.digestOf(this.dataPath(key), offset, size);
  }

  /** Checks the folders and creates the partial folder, at start: what is wrong throws with its paths (for the operator). */
  async init(): Promise<void> {
    try {
      await this.prepare();
    } catch (err) {
      if (isRelayError(err, ErrorCode.USAGE)) throw createError(ErrorCode.USAGE, `${err.message}; refusing to start`);
      throw err;
    }
  }

  private async prepare(): Promise<void> {
    await guardInbox(path.dirname(this.dir), this.dir);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Checks, while the receiver runs, what init checked at start: before a partial is opened and before a
   * file is published, so a --dir (or a folder on its way) swapped for a symlink is not followed. What is
   * wrong is logged here with its paths; the sender gets INBOX_UNSAFE, which names none of them.
   */
  async guard(): Promise<void> {
    // The common case in two system calls on the main thread (realpath walks every component in one):
    // --dir resolves to itself and the partial folder is a real folder of ours. Trips through the thread
    // pool cost many times more per offered file (bench/RESULTS.md, "Figures behind the code"). Anything else gets the full check, which names
    // what is wrong.
    const root = path.dirname(this.dir);
    if (this.looksSafe(root)) return;
    await this.unsafeUnless(() => guardInbox(root, this.dir));
  }

  private looksSafe(root: string): boolean {
    try {
      const st = lstatSync(this.dir);
      return realpathSync.native(root) === path.resolve(root) && st.isDirectory() && st.uid === (process.getuid?.() ?? st.uid);
    } catch {
      return false;
    }
  }

  /** The partial folder vanished while the receiver runs: checks the folders and creates it again. */
  async recreate(): Promise<void> {
    await this.unsafeUnless(() => this.prepare());
  }

  private async unsafeUnless(check: () => Promise<void>): Promise<void> {
    try {
      await check();
    } catch (err) {
      if (!isRelayError(err, ErrorCode.USAGE)) throw err;
      this.log?.error({ reason: err.message }, 'the receiver\'s folder was replaced while running: refusing to write until it is fixed');
      throw createError(ErrorCode.INBOX_UNSAFE, 'the receiver\'s folder was replaced while it runs (a symlink, or a folder that is not its own); it writes nothing until its operator fixes that', err);
    }
  }

  /** True when the partial folder exists as a folder (what /healthz reports). */
  async usable(): Promise<boolean> {
    return stat(this.dir).then((st) => st.isDirectory(), () => false);
  }

  dataPath(key: string): string {
    return this.files(key).data;
  }

  /** Where a put writes a small file before renaming it into place (see put-batch.ts). */
  putPath(key: string): string {
    return path.join(this.dir, `${key}.put`);
  }

  private files(key: string): { data: string; meta: string } {
    return { data: path.join(this.dir, `${key}.part`), meta: path.join(this.dir, `${key}.json`) };
  }

  private async readMeta(key: string): Promise<PartialMeta | undefined> {
    try {
      return JSON.parse(await readFile(this.files(key).meta, 'utf8')) as PartialMeta;
    } catch {
      return undefined;
    }
  }

  /** Bytes held on disk for this exact source, without hashing them (0 when none or a different source). */
  async peek(name: string, id: SourceIdentity): Promise<number> {
    const key = partialKey(name);
    await this.removing.get(key);
    const meta = await this.readMeta(key);
    if (!meta || !sameSource(meta, name, id)) return 0;
    try {
      return Math.min((await stat(this.files(key).data)).size, id.size);
    } catch {
      return 0;
    }
  }

  /** Opens the partial for this source: resumes what is on disk, or starts over when the source differs. */
  async open(name: string, id: SourceIdentity): Promise<OpenedPartial> {
    await this.guard();
    const key = partialKey(name);
    await this.removing.get(key);
    const { data, meta: metaFile } = this.files(key);
    const meta = await this.readMeta(key);
    if (meta && sameSource(meta, name, id)) {
      try {
        const fh = await open(data, 'r+');
        const size = (await fh.stat()).size;
        const offset = Math.min(size, id.size);
        if (size > offset) await fh.truncate(offset);
        return { key, fh, offset, digest: this.digestOf(key, offset, id.size), resumed: offset > 0 };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    await this.discard(key);
    const fresh: PartialMeta = { name, size: id.size, mtimeMs: id.mtimeMs, createdAt: Date.now() };
    // The meta is written first: a .part without its .json is an orphan that the sweep removes.
    await againIfGone(() => writeFile(metaFile, JSON.stringify(fresh), { mode: 0o600 }), () => this.recreate());
    const fh = await open(data, 'w+', 0o600);
    return { key, fh, offset: 0, digest: this.digestOf(key, 0, id.size), resumed: false };
  }

  /**
   * Moves a complete, fsynced partial to its final path atomically (replacing any file there), then makes
   * the rename itself durable by fsyncing the destination folder.
   */
  async publish(key: string, finalPath: string): Promise<void> {
    await this.guard();
    const { data, meta } = this.files(key);
    const parent = path.dirname(finalPath);
    const changed = await makeFolder(parent);
    await rename(data, finalPath);
    for (const dir of [parent, ...changed, this.dir]) await fsyncDir(dir);
    await rm(meta, { force: true });
  }

  async discard(key: string): Promise<void> {
    const { data, meta } = this.files(key);
    await rm(data, { force: true });
    await rm(meta, { force: true });
  }

  /**
   * Removes partials untouched for longer than ttlMs, except keys `isActive` claims. The check runs again
   * right before each removal, and an offer that peeks or opens a key waits for its removal to finish, so a
   * transfer starting while the sweep runs is either skipped by it or starts fresh after it, never half-deleted.
   */
  async sweep(ttlMs: number, isActive: (key: string) => boolean, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch {
      return removed;
    }
    // Only names this store creates: a planted or foreign file is never removed.
    const ours = entries.filter(isStoreFileName);
    // A put's file left by a crash: never confirmed, so it goes once it is older than the orphan grace.
    for (const put of ours.filter((e) => e.endsWith('.put'))) {
      const key = put.slice(0, -'.put'.length);
      if (isActive(key)) continue;
      const file = this.putPath(key);
      const mtime = await stat(file).then((st) => st.mtimeMs, () => undefined);
      if (mtime === undefined || now - mtime <= Math.min(ttlMs, 60_000) || isActive(key)) continue;
      await rm(file, { force: true });
      removed.push(key);
    }
    const keys = new Set(ours.filter((e) => !e.endsWith('.put')).map((e) => e.replace(/\.(part|json)$/, '')));
    for (const key of keys) {
      if (isActive(key)) continue;
      const { data, meta } = this.files(key);
      const times = await Promise.all([data, meta].map((f) => stat(f).then((st) => st.mtimeMs, () => undefined)));
      const newest = Math.max(...times.map((t) => t ?? -Infinity));
      const orphan = times[0] === undefined || times[1] === undefined;
      // A fresh orphan may be a transfer being created right now; give it the same grace as the rest.
      if (!(now - newest > ttlMs || (orphan && now - newest > Math.min(ttlMs, 60_000)))) continue;
      if (isActive(key)) continue;
      const removal = this.discard(key);
      this.removing.set(key, removal);
      try {
        await removal;
      } finally {
        this.removing.delete(key);
      }
      removed.push(key);
    }
    return removed;
  }
}

/** A running sha256 over the first `length` bytes of a file (one streamed read). */
export async function hashPrefix(file: string, length: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (length === 0) return hash;
  const stream = createReadStream(file, { start: 0, end: length - 1, highWaterMark: 1024 * 1024 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash;
}
