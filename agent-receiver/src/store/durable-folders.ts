/**
 * What both ways of publishing (a committed transfer, a put's small files) share to make a rename durable:
 * the folders whose entries changed are fsynced, including the parent of every folder created on the way,
 * and a partial folder removed under a running receiver is made again once rather than fail every send.
 */
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * mkdir -p of `dir`. Returns the folders whose entries it changed: the parent of each folder it created
 * (a new folder is durable only once its own entry is synced in its parent); none when `dir` existed.
 */
export async function makeFolder(dir: string): Promise<string[]> {
  const first = await mkdir(dir, { recursive: true });
  const changed: string[] = [];
  if (first) for (let d = dir; d.length >= first.length; d = path.dirname(d)) changed.push(path.dirname(d));
  return changed;
}

/** Runs `fn`; when it fails with ENOENT (the partial folder is gone), `recreate`s it and runs `fn` once more. */
export async function againIfGone<T>(fn: () => Promise<T>, recreate: () => Promise<void>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await recreate();
    return fn();
  }
}
