/**
 * The sender's running sha256 on a hash thread: the thread reads the file itself, only the version the
 * transfer pinned, and answers digests ahead of, at and behind what was fed. Real files in a temp folder;
 * every digest is checked against node:crypto over the same bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { FileHasher, INLINE_DIGEST_MAX } from '@relayer/common/file-hasher';
import { ErrorCode } from '@relayer/common';
import { RunningHash, SharedHashes, ThreadHash } from '@relayer/agent-sender';
import { closeAll, expectRejectsCode, tmpDir, track } from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;
const noRead = async (): Promise<void> => {
  throw new Error('a hash thread reads the file itself');
};

function hasher(threads = 1): FileHasher {
  const h = new FileHasher({ threads });
  track(() => h.close());
  return h;
}

/** A file of `size` random bytes, opened the way LocalSource opens it, with its pinned identity. */
async function source(size: number) {
  const dir = await tmpDir('relay-thread-hash-');
  const file = path.join(dir, 'src.bin');
  const data = randomBytes(size);
  await writeFile(file, data);
  const fh = await open(file, 'r');
  track(() => fh.close());
  const st = await fh.stat();
  const identity = { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev };
  return { dir, file, data, identity, heldAt: `/proc/self/fd/${fh.fd}` };
}

describe('ThreadHash: the sender\'s sha256 on a thread that reads the pinned file', () => {
  afterEach(closeAll);

  it('gives files over INLINE_DIGEST_MAX a thread hash and smaller ones a main-thread hash; none without a hasher', async () => {
    const big = await source(INLINE_DIGEST_MAX + 1);
    const small = await source(INLINE_DIGEST_MAX);
    const shared = new SharedHashes({ hasher: hasher() });
    expect(shared.acquire(big.file, big.identity, big.heldAt)).to.be.instanceOf(ThreadHash);
    expect(shared.acquire(small.file, small.identity, small.heldAt)).to.be.instanceOf(RunningHash);
    expect(new SharedHashes().acquire(big.file, big.identity)).to.be.instanceOf(RunningHash);
    expect(new SharedHashes({ hasher: hasher(0) }).acquire(big.file, big.identity)).to.be.instanceOf(RunningHash);
  });

  it('equals node:crypto at the end, ahead of what was fed, and behind it (off the chunk grid)', async () => {
    const s = await source(40 * MiB + 123);
    const h = new SharedHashes({ hasher: hasher() }).acquire(s.file, s.identity, s.heldAt);
    const chunk = MiB;
    for (let at = 0; at < 20 * chunk; at += chunk) h.feed(at, s.data.subarray(at, at + chunk));
    expect(h.hashedTo).to.equal(20 * chunk);
    // Ahead: the receiver holds more than was read (a resume).
    expect(await h.digestAt(25 * chunk + 7, noRead, chunk)).to.equal(sha(s.data.subarray(0, 25 * chunk + 7)));
    expect(h.hashedTo).to.equal(25 * chunk + 7);
    // Behind, past the thread's first kept state (16 MiB) and before it.
    expect(await h.digestAt(17 * chunk + 5, noRead, chunk)).to.equal(sha(s.data.subarray(0, 17 * chunk + 5)));
    expect(await h.digestAt(3, noRead, chunk)).to.equal(sha(s.data.subarray(0, 3)));
    await h.extendTo(s.data.length, noRead, chunk);
    expect(await h.digestAt(s.data.length, noRead, chunk)).to.equal(sha(s.data));
    h.close();
  });

  it('hashes the version that was sent when the path is renamed over mid-send (read through the held descriptor)', async () => {
    const s = await source(3 * MiB);
    const h = new SharedHashes({ hasher: hasher() }).acquire(s.file, s.identity, s.heldAt);
    h.feed(0, s.data.subarray(0, MiB));
    // A build writes the next version and renames it into place while the old one is being sent.
    const next = path.join(s.dir, 'next.bin');
    await writeFile(next, randomBytes(3 * MiB));
    await rename(next, s.file);
    expect(await h.digestAt(s.data.length, noRead, MiB)).to.equal(sha(s.data));
    expect(sha(await readFile(s.file))).to.not.equal(sha(s.data));
  });

  it('refuses to hash another file under the pinned name: the digest rejects with IO, it never hashes the new bytes', async () => {
    const s = await source(3 * MiB);
    // No held descriptor: only the path, which now names another inode.
    const h = new SharedHashes({ hasher: hasher() }).acquire(s.file, s.identity);
    const next = path.join(s.dir, 'next.bin');
    await writeFile(next, s.data);
    await rename(next, s.file);
    const err = await expectRejectsCode(h.digestAt(s.data.length, noRead, MiB), ErrorCode.IO);
    expect(err.message).to.match(/no longer the file that was opened/);
  });

  it('rejects with IO when the file is shorter than the digest asked for (it shrank)', async () => {
    const s = await source(2 * MiB);
    const h = new SharedHashes({ hasher: hasher() }).acquire(s.file, s.identity, s.heldAt);
    const err = await expectRejectsCode(h.digestAt(s.data.length + 10, noRead, MiB), ErrorCode.IO);
    expect(err.message).to.match(/ends at/);
  });
});
