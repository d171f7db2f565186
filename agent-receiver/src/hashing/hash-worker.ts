/**
 * The thread behind FileHasher: keeps one running sha256 per partial file and extends it by reading the
 * bytes back from the file (the page cache, just written), so the receiver's main thread neither hashes nor
 * copies chunk bytes across threads. Blocking reads are fine here: this thread does nothing else, and
 * messages are handled strictly in order, so a digest covers every extend posted before it.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { HashReply, HashRequest } from './hash-messages.js';

interface Session {
  path: string;
  /** Open only while the transfer is; reopened by path on the next extend. */
  fd: number | undefined;
  hash: Hash;
  /** Bytes [0, at) are in the hash. */
  at: number;
  /** The first failure: every later digest reports it. */
  error: string | undefined;
}

const READ_SIZE = 1024 * 1024;
const buf = Buffer.allocUnsafe(READ_SIZE);
const sessions = new Map<number, Session>();
const port = parentPort!;

function closeFd(s: Session): void {
  if (s.fd === undefined) return;
  try {
    closeSync(s.fd);
  } catch {
    // Already gone: nothing to release.
  }
  s.fd = undefined;
}

function extend(s: Session, to: number): void {
  if (s.error || s.at >= to) return;
  try {
    s.fd ??= openSync(s.path, 'r');
    while (s.at < to) {
      const n = readSync(s.fd, buf, 0, Math.min(READ_SIZE, to - s.at), s.at);
      if (n === 0) throw new Error(`${s.path} ends at ${s.at} bytes, ${to} were written`);
      s.hash.update(buf.subarray(0, n));
      s.at += n;
    }
  } catch (err) {
    s.error = (err as Error).message;
    closeFd(s);
  }
}

function reply(message: HashReply): void {
  port.postMessage(message);
}

port.on('message', (m: HashRequest) => {
  switch (m.op) {
    case 'open':
      sessions.set(m.id, { path: m.path, fd: undefined, hash: createHash('sha256'), at: 0, error: undefined });
      break;
    case 'extend': {
      const s = sessions.get(m.id);
      if (s) extend(s, m.to);
      break;
    }
    case 'digest': {
      const s = sessions.get(m.id);
      if (!s) return reply({ seq: m.seq, error: `no hash session ${m.id}` });
      extend(s, m.at);
      if (s.error) return reply({ seq: m.seq, error: s.error });
      if (s.at !== m.at) return reply({ seq: m.seq, error: `hashed ${s.at} bytes, asked for the digest at ${m.at}` });
      return reply({ seq: m.seq, sha256: s.hash.copy().digest('hex') });
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
