/**
 * One running sha256 per version of a file, shared by the transfers that send it at the same time (a
 * fan-out to several receivers, or concurrent jobs of one agent): the file is hashed once, not once per
 * target, which matters most where sha256 is slow (a Raspberry Pi has no SHA instructions). A hash is
 * shared only between opens of the same version (size, mtime, ctime, inode and device all equal); any other
 * version gets a hash of its own. An entry lives while a transfer holds it, and a complete one a little longer.
 */
import { INLINE_DIGEST_MAX, type FileHasher } from '@relayer/common/file-hasher';
import { FINISHED_KEPT } from '../limits.js';
import { sameVersion, type LocalIdentity } from './local-source.js';
import { RunningHash, type SourceHash } from './running-hash.js';
import { ThreadHash } from './thread-hash.js';

interface Entry {
  identity: LocalIdentity;
  hash: SourceHash;
  users: number;
  /** hashedTo when this entry was last counted in hashedBytes. */
  counted: number;
}


export interface SharedHashesOptions {
  /**
   * Hash threads: files over INLINE_DIGEST_MAX are hashed there, read back from the file. Without one,
   * every file is hashed on the main thread from the bytes read for sending.
   */
  hasher?: FileHasher;
}

export class SharedHashes {
  private readonly entries = new Map<string, Entry>();
  private readonly finished = new Map<string, Entry>();
  private released = 0;

  constructor(private readonly options: SharedHashesOptions = {}) {}

  /**
   * The running hash of this version of `file`; give it back with release() when the transfer ends.
   * `heldAt`: where this process holds that version open (`/proc/self/fd/N`), for a hash thread to read it.
   */
  acquire(file: string, identity: LocalIdentity, heldAt?: string): SourceHash {
    const entry = this.entries.get(file);
    if (entry && sameVersion(entry.identity, identity)) {
      entry.users++;
      return entry.hash;
    }
    const done = this.finished.get(file);
    if (done) this.finished.delete(file);
    if (!entry && done && sameVersion(done.identity, identity)) {
      done.users = 1;
      this.entries.set(file, done);
      return done.hash;
    }
    done?.hash.close();
    const hash = this.create(file, identity, heldAt);
    // A different version while the old one is still held: the old one keeps its entry, this one goes unshared.
    if (!entry) this.entries.set(file, { identity, hash, users: 1, counted: 0 });
    return hash;
  }

  release(file: string, hash: SourceHash): void {
    const entry = this.entries.get(file);
    if (entry?.hash !== hash) {
      this.released += hash.hashedTo;
      hash.close();
      return;
    }
    if (--entry.users > 0) return;
    this.entries.delete(file);
    this.released += hash.hashedTo - entry.counted;
    entry.counted = hash.hashedTo;
    if (hash.hashedTo !== entry.identity.size) return hash.close();
    this.finished.set(file, entry);
    if (this.finished.size <= FINISHED_KEPT) return;
    const oldest = this.finished.keys().next().value!;
    this.finished.get(oldest)!.hash.close();
    this.finished.delete(oldest);
  }

  private create(file: string, identity: LocalIdentity, heldAt: string | undefined): SourceHash {
    const { hasher } = this.options;
    if (!hasher || hasher.threadCount === 0 || identity.size <= INLINE_DIGEST_MAX) return new RunningHash();
    return new ThreadHash(hasher.open(file, { dev: identity.dev, ino: identity.ino, ...(heldAt ? { heldAt } : {}) }));
  }

  /** Bytes hashed by the hashes this object handed out and got back (re-reads to check an old prefix aside). */
  get hashedBytes(): number {
    return this.released;
  }

  /** Files with a hash held now (by a transfer; complete ones kept for reuse are not counted). */
  get size(): number {
    return this.entries.size;
  }
}
