/**
 * sha256 of published files, keyed by path and checked against size, mtime and inode: answering "is the
 * final file already identical?" costs one stat, not a re-read, however often a sender asks.
 */
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { hashPrefix } from './partial-store.js';

interface Entry {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: Promise<string>;
}

export class FinalHashCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly log: Logger, private readonly maxEntries = 1024) {}

  /** The file's sha256 when it is a regular file of exactly `size` bytes, else undefined. */
  async sha256(file: string, size: number): Promise<string | undefined> {
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile() || st.size !== size) return undefined;
    const hit = this.entries.get(file);
    if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs && hit.ino === st.ino) return hit.sha256;
    const entry: Entry = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: this.hash(file, size) };
    this.set(file, entry);
    try {
      return await entry.sha256;
    } catch (err) {
      if (this.entries.get(file) === entry) this.entries.delete(file);
      throw err;
    }
  }

  /** Records the sha256 of a file just published (its bytes were verified on the way in). */
  async remember(file: string, sha256: string): Promise<void> {
    const st = await stat(file).catch(() => undefined);
    if (st?.isFile()) this.set(file, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: Promise.resolve(sha256) });
  }

  private async hash(file: string, size: number): Promise<string> {
    const digest = (await hashPrefix(file, size)).digest('hex');
    this.log.debug({ size }, 'final file hashed');
    const after = await stat(file).catch(() => undefined);
    const entry = this.entries.get(file);
    // Changed while it was read: the digest may mix two versions; answer it once, never cache it.
    if (entry && (!after || after.size !== entry.size || after.mtimeMs !== entry.mtimeMs || after.ino !== entry.ino)) this.entries.delete(file);
    return digest;
  }

  private set(file: string, entry: Entry): void {
    this.entries.delete(file);
    this.entries.set(file, entry);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}
