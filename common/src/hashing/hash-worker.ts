/**
 * The thread behind FileHasher: keeps one running sha256 per file and extends it by reading the bytes from
 * the file (the page cache: the main thread has just written or read them), so the main thread neither
 * hashes nor copies bytes across threads. Blocking reads are fine here: this thread does nothing else, and
 * messages are handled strictly in order, so a digest covers every extend posted before it.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { FilePin, HashReply, HashRequest } from './hash-messages.js';

interface FileHash {
  path: string;
  pin: FilePin | undefined;
  /** Open only while the transfer is; reopened on the next extend. */
  fd: number | undefined;
  hash: Hash;
  /** Bytes [0, at) are in the hash. */
  at: number;
  /**
   * Copies of the hash's state, ascending, every SNAPSHOT_EVERY bytes: a digest asked for behind `at` (a
   * sender resuming at a receiver's offset its reads have run past) re-reads from the nearest one.
   */
  snapshots: Array<{ at: number; hash: Hash }>;
  /** The first failure: every later digest reports it. */
  error: string | undefined;
}

const READ_SIZE = 1024 * 1024;
/** ~0.2 KB a copy: 6,400 for a 100 GiB file; a digest behind re-reads at most this much. */
const SNAPSHOT_EVERY = 16 * 1024 * 1024;
const buf = Buffer.allocUnsafe(READ_SIZE);
const sessions = new Map<number, FileHash>();
const port = parentPort!;

function closeFd(s: FileHash): void {
  if (s.fd === undefined) return;
  try {
    closeSync(s.fd);
  } catch {
    // Already gone: nothing to release.
  }
  s.fd = undefined;
}

/** Opens the pinned version: where it is held first, then by path; any other inode is refused. */
function openPinned(s: FileHash): number {
  if (!s.pin) return openSync(s.path, 'r');
  for (const where of [s.pin.heldAt, s.path]) {
    if (where === undefined) continue;
    let fd: number;
    try {
      fd = openSync(where, 'r');
    } catch {
      continue;
    }
    const st = fstatSync(fd);
    if (st.ino === s.pin.ino && st.dev === s.pin.dev) return fd;
    closeSync(fd);
  }
  throw new Error(`${s.path} is no longer the file that was opened (replaced or removed)`);
}

/** Reads [from, to) of the session's file into `hash`. */
function readInto(s: FileHash, hash: Hash, from: number, to: number, onStep?: (at: number) => void): void {
  s.fd ??= openPinned(s);
  let at = from;
  while (at < to) {
    const n = readSync(s.fd, buf, 0, Math.min(READ_SIZE, to - at), at);
    if (n === 0) throw new Error(`${s.path} ends at ${at} bytes, ${to} were expected`);
    hash.update(buf.subarray(0, n));
    at += n;
    onStep?.(at);
  }
}

function extend(s: FileHash, to: number): void {
  if (s.error || s.at >= to) return;
  try {
    readInto(s, s.hash, s.at, to, (at) => {
      s.at = at;
      const last = s.snapshots.at(-1)?.at ?? 0;
      if (at - last >= SNAPSHOT_EVERY) s.snapshots.push({ at, hash: s.hash.copy() });
    });
  } catch (err) {
    s.error = (err as Error).message;
    closeFd(s);
  }
}

function digestAt(s: FileHash, at: number): string {
  extend(s, at);
  if (s.error) throw new Error(s.error);
  if (s.at === at) return s.hash.copy().digest('hex');
  const from = s.snapshots.findLast((k) => k.at <= at);
  const hash = from ? from.hash.copy() : createHash('sha256');
  readInto(s, hash, from?.at ?? 0, at);
  return hash.digest('hex');
}

function reply(message: HashReply): void {
  port.postMessage(message);
}

port.on('message', (m: HashRequest) => {
  switch (m.op) {
    case 'open':
      sessions.set(m.id, { path: m.path, pin: m.pin, fd: undefined, hash: createHash('sha256'), at: 0, snapshots: [], error: undefined });
      break;
    case 'extend': {
      const s = sessions.get(m.id);
      if (s) extend(s, m.to);
      break;
    }
    case 'digest': {
      const s = sessions.get(m.id);
      if (!s) return reply({ seq: m.seq, error: `no hash session ${m.id}` });
      try {
        return reply({ seq: m.seq, sha256: digestAt(s, m.at) });
      } catch (err) {
        return reply({ seq: m.seq, error: (err as Error).message });
      }
    }
    case 'release': {
      const s = sessions.get(m.id);
      if (s) closeFd(s);
      break;
    }
    case 'close': {
      const s = sessions.get(m.id);
      if (s) closeFd(s);
      sessions.delete(m.id);
      break;
    }
  }
});
