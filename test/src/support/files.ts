/** Temp folders and files with known contents, and what a receiver's folder holds. */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PARTIAL_DIR } from '@relayer/common';
import { track } from './lifecycle.js';

export const MiB = 1024 * 1024;

export async function tmpDir(prefix = 'relay-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  track(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface RandomFile {
  path: string;
  size: number;
  sha256: string;
}

/** Writes `size` random bytes to dir/name and returns its sha256. */
export async function randomFile(dir: string, size: number, name = `file-${randomBytes(4).toString('hex')}.bin`): Promise<RandomFile> {
  const file = path.join(dir, name);
  await mkdir(path.dirname(file), { recursive: true });
  const fh = await open(file, 'w');
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  try {
    for (let pos = 0; pos < size; pos += buf.length) {
      const piece = buf.subarray(0, Math.min(buf.length, size - pos));
      randomFillSync(piece);
      hash.update(piece);
      await fh.write(piece, 0, piece.length, pos);
    }
  } finally {
    await fh.close();
  }
  return { path: file, size, sha256: hash.digest('hex') };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(file)) hash.update(c as Buffer);
  return hash.digest('hex');
}

/** Names inside `<dir>/.relay-partial/` (empty when no transfer holds a partial). */
export async function partialEntries(dir: string): Promise<string[]> {
  return readdir(path.join(dir, PARTIAL_DIR)).catch(() => []);
}

/** Names directly inside dir, without the partial folder. */
export async function publishedEntries(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n !== PARTIAL_DIR).sort();
}
