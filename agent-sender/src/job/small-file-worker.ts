/**
 * The worker behind SmallFileReader: reads a batch of small files with synchronous calls and hashes them.
 * Synchronous calls on a cached small file are far cheaper than the promise API's thread-pool round trip
 * each, which made reading, not sending, the sender's limit on folders of small files (bench/RESULTS.md, "Figures behind the code"). Here they
 * block only this thread.
 *
 * The checks are those of openAllowed and LocalSource: opened O_NONBLOCK (a FIFO swapped in does not
 * hang), the descriptor's real path under an allowed root that is still the folder recorded at start,
 * a regular file, and the same version after the read as before it.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { createError, describeErrno, elide, entryMode, ErrorCode, toRelayError } from '@relayer/common';
import { sameVersion } from '../transfer/local-source.js';
import { isRecordedFolder, rootMoved, rootOf, type FixedRoot } from './sources.js';
import { descriptorPath } from './descriptor-path.js';
import type { ReadRequest, ReadResponse, ReadResult } from './small-file-reader.js';

/** Roots checked once per batch: each still the folder recorded at start (or not). */
function rootChecker(roots: readonly FixedRoot[]): (real: string, file: string) => void {
  const still = new Map<FixedRoot, boolean>();
  return (real, file) => {
    const root = rootOf(roots, real, file);
    let ok = still.get(root);
    if (ok === undefined) still.set(root, (ok = isRecordedFolder(root, lstatSync(root.real, { throwIfNoEntry: false }))));
    if (!ok) throw rootMoved(root, file);
  };
}

function readOne(file: string, max: number, check: ((real: string, file: string) => void) | undefined, alloc: (size: number) => Buffer, hashOnly: boolean): ReadResult {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw createError(ErrorCode.SOURCE, `cannot read ${elide(file)}: ${describeErrno((err as NodeJS.ErrnoException).code ?? 'EIO')}`);
  }
  try {
    check?.(descriptorPath(fd, file), file);
    const before = fstatSync(fd);
    if (!before.isFile()) throw createError(ErrorCode.SOURCE, `${file} is not a regular file`);
    if (before.size > max) return { kind: 'large' };
    const data = alloc(before.size);
    for (let got = 0; got < data.length;) {
      const n = readSync(fd, data, got, data.length - got, got);
      if (n === 0) throw createError(ErrorCode.SOURCE_CHANGED, `${file} shrank while being read`);
      got += n;
    }
    if (!sameVersion(before, fstatSync(fd))) {
      throw createError(ErrorCode.SOURCE_CHANGED, `${file} changed while it was being sent: nothing was committed, send it again`);
    }
    const sha256 = createHash('sha256').update(data).digest('hex');
    return hashOnly ? { kind: 'hashed', size: data.length, mode: entryMode(before.mode), sha256 } : { kind: 'read', data, sha256 };
  } finally {
    closeSync(fd);
  }
}

/** Hashing only, the bytes stay here: one scratch buffer, reused file after file. */
function scratch(req: ReadRequest): (size: number) => Buffer {
  let buf = Buffer.allocUnsafe(Math.min(req.max, req.files.reduce((n, f) => Math.max(n, f.size), 0)));
  return (size) => {
    if (size > buf.length) buf = Buffer.allocUnsafe(size);
    return buf.subarray(0, size);
  };
}

/**
 * One buffer for the batch, handed over (not copied) with the answer; each file is a view of it. A file
 * that grew since it was listed (still within max) gets a buffer of its own.
 */
function arena(req: ReadRequest, transfer: ArrayBuffer[]): (size: number) => Buffer {
  const arena = new ArrayBuffer(req.files.reduce((n, f) => n + Math.min(f.size, req.max), 0));
  transfer.push(arena);
  let used = 0;
  return (size) => {
    if (used + size <= arena.byteLength) {
      used += size;
      return Buffer.from(arena, used - size, size);
    }
    const own = Buffer.allocUnsafeSlow(size);
    transfer.push(own.buffer as ArrayBuffer);
    return own;
  };
}

parentPort!.on('message', (req: ReadRequest) => {
  const transfer: ArrayBuffer[] = [];
  const alloc = req.hashOnly ? scratch(req) : arena(req, transfer);
  const check = req.roots ? rootChecker(req.roots) : undefined;
  const results = req.files.map((f): ReadResult => {
    try {
      return readOne(f.file, req.max, check, alloc, req.hashOnly === true);
    } catch (err) {
      const e = toRelayError(err, ErrorCode.SOURCE);
      return { kind: 'error', code: e.code, message: e.message };
    }
  });
  const res: ReadResponse = { id: req.id, results };
  parentPort!.postMessage(res, transfer);
});
