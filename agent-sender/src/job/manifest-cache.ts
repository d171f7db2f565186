/**
 * The sha256 of files a release manifest hashed before, by version (device, inode, size, mtime and ctime
 * in nanoseconds): a re-release of a tree whose files did not change reads none of them again, as rsync
 * skips files by size and mtime, but with the inode change time too (no write or chmod leaves it as it was).
 *
 * A file hashed within RACY_MS of its last change is not remembered: a timestamp has the kernel clock's
 * granularity, so a rewrite of the same size in the same tick would look like the same version (git's
 * "racily clean" index entries). Such a file is hashed again next time.
 */
import type { BigIntStats } from 'node:fs';

/** Versions remembered (an entry is ~200 bytes): the most recently used are kept. */
const MAX_ENTRIES = 50_000;
const RACY_MS = 2_000;

interface Known {
  version: string;
  sha256: string;
}

export class ManifestCache {
  private readonly known = new Map<string, Known>();

  /** `now`: the clock a file's last change is compared with (tests move it on). */
  constructor(private readonly maxEntries = MAX_ENTRIES, private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.known.size;
  }

  /** The sha256 this version of the file had, if it was hashed before. */
  get(st: BigIntStats): string | undefined {
    const at = key(st);
    const k = this.known.get(at);
    if (!k || k.version !== version(st)) return undefined;
    // Most recently used last: the oldest goes first when full.
    this.known.delete(at);
    this.known.set(at, k);
    return k.sha256;
  }

  /** Remembers the sha256 of the version `st` describes, read from it while it was that version. */
  set(st: BigIntStats, sha256: string, now = this.now()): void {
    if (now - Number(st.ctimeMs) < RACY_MS || now - Number(st.mtimeMs) < RACY_MS) return;
    const at = key(st);
    this.known.delete(at);
    this.known.set(at, { version: version(st), sha256 });
    if (this.known.size > this.maxEntries) this.known.delete(this.known.keys().next().value!);
  }
}

function key(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

function version(st: BigIntStats): string {
  return `${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}
