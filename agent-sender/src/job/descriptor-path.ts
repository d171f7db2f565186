/**
 * Where an open descriptor really points, for the allow-roots check after open (a folder renamed and a
 * symlink put in its place after an earlier check cannot redirect the read). Synchronous on purpose: it is
 * two cheap system calls, and the small-file worker (a thread of its own) needs it the same way as the
 * main thread.
 */
import { fstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { createError, ErrorCode } from '@relayer/common';

export function descriptorPath(fd: number, file: string): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    // No /proc: resolve the name, then make sure it still names the file that is open.
    const real = realpathSync(file);
    const [a, b] = [fstatSync(fd), statSync(real)];
    if (a.ino !== b.ino || a.dev !== b.dev) throw createError(ErrorCode.NOT_ALLOWED, `refused ${file}: it changed while being checked`);
    return real;
  }
}
