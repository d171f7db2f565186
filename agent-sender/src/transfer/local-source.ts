/**
 * The file being sent, pinned to the version that was opened: its identity (size, mtime, ctime, inode,
 * device) is taken once, and `checkUnchanged` fails the send when the file is no longer that version, so
 * bytes of two versions are never committed as one.
 */
import type { FileHandle } from 'node:fs/promises';
import { createError, ErrorCode, toRelayError } from '@relayer/common';

export interface LocalIdentity {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  /** Bytes the file takes on disk, when that is less than its size (a sparse file); else undefined. */
  allocated?: number;
}

/** Both stats are of the same version of the same file. */
export function sameVersion(a: LocalIdentity, b: LocalIdentity): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev;
}

export class LocalSource {
  private constructor(readonly file: string, private readonly fh: FileHandle, readonly identity: LocalIdentity) {}

  /** Opens (through `open`, where the agent checks its allow-roots) and pins the version. Throws SOURCE. */
  static async open(file: string, open: (file: string) => Promise<FileHandle>): Promise<LocalSource> {
    let fh: FileHandle;
    try {
      fh = await open(file);
    } catch (err) {
      throw toRelayError(err, ErrorCode.SOURCE);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw createError(ErrorCode.SOURCE, `${file} is not a regular file`);
      const allocated = st.blocks * 512 < st.size ? st.blocks * 512 : undefined;
      return new LocalSource(file, fh, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev, ...(allocated === undefined ? {} : { allocated }) });
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  get size(): number {
    return this.identity.size;
  }

  /** Where this process holds the pinned version open, for another thread to read it (Linux's /proc). */
  get heldAt(): string {
    return `/proc/self/fd/${this.fh.fd}`;
  }

  /** Throws SOURCE_CHANGED when the file is no longer the version that was opened. */
  async checkUnchanged(): Promise<void> {
    if (!sameVersion(this.identity, await this.fh.stat())) {
      throw createError(ErrorCode.SOURCE_CHANGED, `${this.file} changed while it was being sent: nothing was committed, send it again`);
    }
  }

  /** Exactly `length` bytes at `position` into buf; a file that got shorter is SOURCE_CHANGED. */
  async readInto(buf: Buffer, length: number, position: number): Promise<void> {
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.fh.read(buf, got, length - got, position + got);
      if (bytesRead === 0) throw createError(ErrorCode.SOURCE_CHANGED, `file shrank while being read (at ${position + got})`);
      got += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
