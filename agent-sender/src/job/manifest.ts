/**
 * A release's manifest, built before any byte is sent: each file's name in the release, size, mode
 * (whether it is executable) and sha256. The receiver hard-links what its current release already holds
 * and is sent the rest; the manifest's sha256 is what the node checks the whole release against, so a
 * file that changes after it was hashed fails the release instead of landing in it.
 */
import { createHash } from 'node:crypto';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { ErrorCode, RelayError, toRelayError, type ManifestEntry } from '@relayer/common';
import type { SourceFile, SourceList } from './file-list.js';

/** Files hashed at once. */
const HASH_PARALLEL = 8;
const READ_SIZE = 1024 * 1024;

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

export async function buildManifest(files: SourceList, open: (file: string) => Promise<FileHandle> = (f) => openFile(f, 'r'), signal?: AbortSignal): Promise<ManifestEntry[]> {
  const out = new Array<ManifestEntry>(files.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    const buf = Buffer.allocUnsafe(READ_SIZE);
    while (next < files.length) {
      if (signal?.aborted) throw new RelayError(ErrorCode.CANCELLED, 'cancelled');
      const i = next++;
      const f = files.at(i)!;
      out[i] = await hashOne(f, open, buf).catch((err: unknown) => {
        throw new RelayError(toRelayError(err, ErrorCode.SOURCE).code, `cannot read ${f.name} for the release manifest: ${toRelayError(err, ErrorCode.SOURCE).message}`);
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_PARALLEL, files.length) }, lane));
  return out;
}

async function hashOne(f: SourceFile, open: (file: string) => Promise<FileHandle>, buf: Buffer): Promise<ManifestEntry> {
  const fh = await open(f.file);
  try {
    const st = await fh.stat();
    const hash = createHash('sha256');
    let at = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    if (at !== st.size) throw new RelayError(ErrorCode.SOURCE_CHANGED, `${f.name} changed while it was hashed`);
    return { name: f.name, size: at, mode: st.mode & 0o111 ? 0o755 : 0o644, sha256: hash.digest('hex') };
  } finally {
    await fh.close();
  }
}
