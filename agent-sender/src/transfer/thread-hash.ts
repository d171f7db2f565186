/**
 * A running sha256 whose bytes are hashed on a thread (FileHasher), which reads them from the file
 * itself, just after the main thread read them for sending: the sender's main thread hashed 30% of its
 * time, and a Raspberry Pi's cores have no SHA instructions. The thread reads only the version of the file
 * the transfer pinned (same inode and device): through the sender's own descriptor while it is open, so a
 * file renamed over mid-send is still hashed from the bytes that were sent.
 */
import type { FileDigest } from '@relayer/common/file-hasher';
import type { SourceHash } from './running-hash.js';

export class ThreadHash implements SourceHash {
  hashedTo = 0;

  constructor(private readonly digest: FileDigest) {}

  feed(offset: number, data: Uint8Array): void {
    if (offset !== this.hashedTo) return;
    this.hashedTo += data.length;
    this.digest.extend(this.hashedTo);
  }

  async extendTo(end: number): Promise<void> {
    if (end <= this.hashedTo) return;
    this.hashedTo = end;
    this.digest.extend(end);
  }

  digestAt(offset: number): Promise<string> {
    // Past the hash (a receiver holds more than was read): the thread reads on to it, as extendTo would.
    this.hashedTo = Math.max(this.hashedTo, offset);
    return this.digest.digest(offset);
  }

  close(): void {
    this.digest.close();
  }
}
