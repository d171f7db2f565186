/**
 * Checks the receiver's folders before anything is written or swept: --dir must not pass through a
 * symlink (a link the operator meant is given as its real path instead), and `.relay-partial` must be a
 * real folder of this user's, so the partial store never follows a planted link into someone else's
 * files. The store's own file names are recognised by `isStoreFileName`; nothing else is ever removed.
 */
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { createError, ErrorCode } from '@relayer/common';

/**
 * `<40 hex>.part` and `<40 hex>.json` (a transfer in progress) and `<40 hex>.put` (a small file of a put
 * being written): the only names the partial store creates (see partialKey).
 */
const STORE_FILE = /^[0-9a-f]{40}\.(part|json|put)$/;

export function isStoreFileName(name: string): boolean {
  return STORE_FILE.test(name);
}

async function lstatOrUndefined(p: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  return lstat(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/**
 * Throws USAGE (with the paths, for the operator) when an existing component of `root` is a symlink, or
 * `partialDir` is not a real folder of ours. At start that refuses to start; later see PartialStore.recreate.
 */
export async function guardInbox(root: string, partialDir: string): Promise<void> {
  const abs = path.resolve(root);
  const parts = abs.split(path.sep).filter(Boolean);
  const paths = parts.map((_, i) => path.join(path.parse(abs).root, ...parts.slice(0, i + 1)));
  // Every component at once: this runs before each offer and publish, not only at start.
  const [stats, st] = await Promise.all([Promise.all(paths.map(lstatOrUndefined)), lstatOrUndefined(partialDir)]);
  for (const [i, current] of paths.entries()) {
    const at = stats[i];
    if (!at) break; // the rest is created by the store
    if (at.isSymbolicLink()) {
      const linked = await realpath(current).catch(() => undefined);
      const real = linked && path.join(linked, ...parts.slice(i + 1));
      throw createError(ErrorCode.USAGE, `--dir ${abs} passes through a symlink (${current}). `
        + `If that is intended, give the real path${real ? `: --dir ${real}` : ''}`);
    }
  }
  if (!st) return;
  if (st.isSymbolicLink()) {
    throw createError(ErrorCode.USAGE, `${partialDir} is a symlink (the receiver creates this folder itself: remove the link)`);
  }
  if (!st.isDirectory()) throw createError(ErrorCode.USAGE, `${partialDir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw createError(ErrorCode.USAGE, `${partialDir} belongs to uid ${st.uid}, not to this receiver (uid ${uid}) (chown it or remove it)`);
  }
}
