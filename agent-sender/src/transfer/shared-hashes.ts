/**
 * One running sha256 per version of a file, shared by the transfers that send it at the same time (a
 * fan-out to several receivers, or concurrent jobs of one agent): the file is hashed once, not once per
 * target, which matters most where sha256 is slow (a Raspberry Pi has no SHA instructions). A hash is
 * shared only between opens of the same version (size, mtime, ctime, inode and device all equal); any other
 * version gets a hash of its own. An entry lives while a transfer holds it, and a complete one a little longer.
 */
import { FINISHED_KEPT } from '../limits.js';
import { sameVersion, type LocalIdentity } from './local-source.js';
import { RunningHash } from './running-hash.js';

interface Entry {
  identity: LocalIdentity;
  hash: RunningHash;
  users: number;
  /** hashedTo when this entry was last counted in hashedBytes. */
  counted: number;
}


export class SharedHashes {
  private readonly entries = new Map<string, Entry>();
  private readonly finished = new Map<string, Entry>();
  private released = 0;

  /** The running hash of this version of `file`; give it back with release() when the transfer ends. */
  acquire(file: string, identity: LocalIdentity): RunningHash {
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
    const hash = new RunningHash();
    // A different version while the old one is still held: the old one keeps its entry, this one goes unshared.
    if (!entry) this.entries.set(file, { identity, hash, users: 1, counted: 0 });
    return hash;
  }

  release(file: string, hash: RunningHash): void {
    const entry = this.entries.get(file);
    if (entry?.hash !== hash) {
      this.released += hash.hashedTo;
      return;
    }
    if (--entry.users > 0) return;
    this.entries.delete(file);
    this.released += hash.hashedTo - entry.counted;
    entry.counted = hash.hashedTo;
    if (hash.hashedTo !== entry.identity.size) return;
    this.finished.set(file, entry);
    if (this.finished.size > FINISHED_KEPT) this.finished.delete(this.finished.keys().next().value!);
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
