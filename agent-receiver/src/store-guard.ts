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

/** Throws USAGE when an existing component of `root` is a symlink, or `partialDir` is not a real folder of ours. */
export async function guardInbox(root: string, partialDir: string): Promise<void> {
  const abs = path.resolve(root);
  const parts = abs.split(path.sep).filter(Boolean);
  let current = path.parse(abs).root;
  for (const [i, part] of parts.entries()) {
    current = path.join(current, part);
    const st = await lstatOrUndefined(current);
    if (!st) break; // the rest is created by the store
    if (st.isSymbolicLink()) {
      const linked = await realpath(current).catch(() => undefined);
      const real = linked && path.join(linked, ...parts.slice(i + 1));
      throw createError(ErrorCode.USAGE, `--dir ${abs} passes through a symlink (${current}); refusing to start. `
        + `If that is intended, give the real path${real ? `: --dir ${real}` : ''}`);
    }
  }
  const st = await lstatOrUndefined(partialDir);
  if (!st) return;
  if (st.isSymbolicLink()) {
    throw createError(ErrorCode.USAGE, `${partialDir} is a symlink; refusing to start (the receiver creates this folder itself: remove the link)`);
  }
  if (!st.isDirectory()) throw createError(ErrorCode.USAGE, `${partialDir} is not a directory; refusing to start`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw createError(ErrorCode.USAGE, `${partialDir} belongs to uid ${st.uid}, not to this receiver (uid ${uid}); refusing to start (chown it or remove it)`);
  }
}
