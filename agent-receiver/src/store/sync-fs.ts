/**
 * syncfs(2) of the file system that holds a folder: one call that writes back every dirty file and folder
 * there and commits the journal, where fsyncing a staged release file by file costs a journal commit per
 * few files (measured on ext4: 10,000 × 4 KiB written, then one syncfs, took half the time of writing them
 * with an fsync each, 16 in parallel). Node has no binding for it, so it runs coreutils' `sync -f`
 * (busybox's too); where that command is missing or refuses, the caller fsyncs file by file instead.
 *
 * Linux before 5.8 does not report writeback errors through syncfs: a disk failing under an old kernel
 * shows as an error of a later read, not here.
 */
import { execFile } from 'node:child_process';

/** Commands found missing (or without -f): not tried again. */
const unavailable = new Set<string>();

/**
 * true once the file system holding `dir` is durable; false when syncfs cannot be run here (nothing is
 * claimed: the caller makes the files durable one by one). `command`: the sync program (tests name a missing one).
 */
export function syncFileSystem(dir: string, command = 'sync'): Promise<boolean> {
  if (unavailable.has(command)) return Promise.resolve(false);
  return new Promise((resolve) => {
    execFile(command, ['-f', dir], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }, (err, _stdout, stderr) => {
      if (!err) return resolve(true);
      // No such command (or one without -f): fall back for good. Any other failure: fall back this time,
      // and the fsyncs file by file report the error that made it fail.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || /usage|invalid option|unrecognized/i.test(String(stderr))) unavailable.add(command);
      resolve(false);
    });
  });
}
