/**
 * Writes the chunks of a partial, which fills in order from its start (each chunk at the file's end).
 * For a source that is sparse (a VM image, `truncate -s 2G`) the all-zero blocks are left as holes, as
 * `rsync --sparse` does, so the copy takes on the receiver's disk about what the source takes on the
 * sender's: bytes past a file's end read as zeros (POSIX), so a zero block is skipped, and a chunk that
 * ends in zeros sets the file's size with ftruncate. A fully allocated source is written as it is (a
 * swap file or a preallocated database must not come out with holes).
 */
import type { FileHandle } from 'node:fs/promises';

/** Holes are whole blocks of this size at multiples of it in the file (file systems allocate by 4 KiB blocks). */
export const HOLE_BLOCK = 32 * 1024;

const ZEROS = new Uint8Array(HOLE_BLOCK);

/** Writes all of `data` at `position` (a write may take fewer bytes than asked). */
async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let at = 0; at < data.length;) at += (await fh.write(data, at, data.length - at, position + at)).bytesWritten;
}

function isZero(data: Uint8Array): boolean {
  return Buffer.from(data.buffer, data.byteOffset, data.length).equals(ZEROS.subarray(0, data.length));
}

/**
 * Writes `data` at `offset`, the file's current end. With `holes`, all-zero blocks are not written;
 * the file is `offset + data.length` bytes long afterwards either way. Returns the bytes written to
 * the disk (what the file now takes more, holes aside).
 */
export async function writeChunk(fh: FileHandle, data: Uint8Array, offset: number, holes: boolean): Promise<number> {
  if (!holes) {
    await writeAll(fh, data, offset);
    return data.length;
  }
  const end = offset + data.length;
  let stored = 0;
  let run = -1; // start (in data) of the non-zero blocks not yet written
  let written = offset; // the file's end so far
  for (let at = 0; at < data.length;) {
    const blockEnd = Math.min(data.length, (Math.floor((offset + at) / HOLE_BLOCK) + 1) * HOLE_BLOCK - offset);
    const zero = isZero(data.subarray(at, blockEnd));
    if (!zero && run < 0) run = at;
    if (zero && run >= 0) {
      await writeAll(fh, data.subarray(run, at), offset + run);
      stored += at - run;
      written = offset + at;
      run = -1;
    }
    at = blockEnd;
  }
  if (run >= 0) {
    await writeAll(fh, data.subarray(run), offset + run);
    stored += data.length - run;
    written = end;
  }
  if (written < end) await fh.truncate(end);
  return stored;
}
