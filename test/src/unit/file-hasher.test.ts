/**
 * FileHasher: running sha256 digests of files being written, computed on worker threads from the bytes on
 * disk. Real files in a temp folder; every digest is checked against node:crypto over the same bytes.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { appendFile, open, truncate, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { FileHasher, mainThreadDigest } from '@relayer/agent-receiver';
import { ErrorCode } from '@relayer/common';
import { closeAll, eventually, expectRejectsCode, tmpDir, track } from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const threadCount = (): number => readdirSync('/proc/self/task').length;

function hasher(threads?: number, idleMs?: number): FileHasher {
  const h = new FileHasher({ threads, idleMs });
  track(() => h.close());
  return h;
}

describe('FileHasher: running sha256 of files being written, on worker threads', () => {
  afterEach(closeAll);

  it('equals node:crypto over random chunk sequences, at every point asked', async () => {
    const dir = await tmpDir('relay-hasher-');
    const h = hasher();
    for (let round = 0; round < 5; round++) {
      const file = path.join(dir, `f${round}`);
      const fh = await open(file, 'w');
      const digest = h.open(file);
      const written: Buffer[] = [];
      let at = 0;
      for (let i = 0; i < 20; i++) {
        // Sizes from empty to past the worker's 1 MiB read buffer.
        const chunk = randomBytes(randomInt(0, 3) === 0 ? randomInt(0, 100) : randomInt(1, 1_500_000));
        await fh.write(chunk, 0, chunk.length, at);
        written.push(chunk);
        at += chunk.length;
        digest.extend(at);
        if (randomInt(0, 4) === 0) expect(await digest.digest(at)).to.equal(sha(Buffer.concat(written)));
      }
      expect(await digest.digest(at)).to.equal(sha(Buffer.concat(written)));
      await fh.close();
      digest.close();
    }
  });

  it('hashes a prefix already on disk (a resume), then keeps running over what is appended', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 'p');
    const prefix = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(file, prefix);
    const digest = hasher().open(file);
    digest.extend(prefix.length);
    expect(await digest.digest(prefix.length)).to.equal(sha(prefix));
    const more = randomBytes(100_000);
    await appendFile(file, more);
    digest.extend(prefix.length + more.length);
    expect(await digest.digest(prefix.length + more.length)).to.equal(sha(Buffer.concat([prefix, more])));
  });

  it('keeps the digest so far across release() (file closed while a transfer is paused)', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 'r');
    const a = randomBytes(50_000);
    const b = randomBytes(70_000);
    await writeFile(file, a);
    const digest = hasher().open(file);
    digest.extend(a.length);
    expect(await digest.digest(a.length)).to.equal(sha(a));
    digest.release();
    await appendFile(file, b);
    digest.extend(a.length + b.length);
    expect(await digest.digest(a.length + b.length)).to.equal(sha(Buffer.concat([a, b])));
  });

  it('many files at once over two threads: each digest is its own file\'s', async () => {
    const dir = await tmpDir('relay-hasher-');
    const h = hasher(2);
    const files = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
      const bytes = randomBytes(randomInt(1, 400_000));
      const file = path.join(dir, `m${i}`);
      await writeFile(file, bytes);
      return { bytes, digest: h.open(file) };
    }));
    expect(h.running).to.equal(2);
    for (const f of files) f.digest.extend(f.bytes.length);
    const got = await Promise.all(files.map((f) => f.digest.digest(f.bytes.length)));
    expect(got).to.deep.equal(files.map((f) => sha(f.bytes)));
  });

  it('a file shorter than the bytes said written, or missing, makes the digest reject with IO', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 's');
    await writeFile(file, randomBytes(1000));
    const h = hasher();
    const short = h.open(file);
    short.extend(1000);
    await truncate(file, 400);
    // Extended to 1000 before the truncate was noticed or not: either way the digest at 2000 cannot be had.
    short.extend(2000);
    await expectRejectsCode(short.digest(2000), ErrorCode.IO);
    // The failure sticks: a digest of a file that could not be read is never reported as good.
    await expectRejectsCode(short.digest(2000), ErrorCode.IO);
    const missing = h.open(path.join(dir, 'nope'));
    missing.extend(1);
    await expectRejectsCode(missing.digest(1), ErrorCode.IO);
    // The thread is still fine for other files.
    const ok = h.open(file);
    ok.extend(400);
    expect(await ok.digest(400)).to.have.length(64);
  });

  it('a digest asked behind the bytes hashed is of exactly that prefix (read again from a kept state), never of the wrong length', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 'o');
    const data = randomBytes(40 * 1024 * 1024 + 9);
    await writeFile(file, data);
    const digest = hasher().open(file);
    digest.extend(data.length);
    expect(await digest.digest(data.length)).to.equal(sha(data));
    for (const at of [500, 17 * 1024 * 1024 + 1, 32 * 1024 * 1024]) expect(await digest.digest(at), `at ${at}`).to.equal(sha(data.subarray(0, at)));
    // The running hash is where it was.
    expect(await digest.digest(data.length)).to.equal(sha(data));
  });

  it('an idle thread ends; digests that lived on it carry on, hashed again from the file, and stay exact', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 'idle');
    const first = randomBytes(5 * 1024 * 1024 + 3);
    await writeFile(file, first);
    const before = threadCount();
    const h = hasher(1, 100);
    const digest = h.open(file);
    digest.extend(first.length);
    expect(await digest.digest(first.length)).to.equal(sha(first));
    expect(h.running).to.equal(1);
    await eventually(() => h.running === 0 && threadCount() <= before, 'the idle thread to end');
    const more = randomBytes(70_000);
    await appendFile(file, more);
    digest.extend(first.length + more.length);
    expect(await digest.digest(first.length + more.length)).to.equal(sha(Buffer.concat([first, more])));
    expect(h.running).to.equal(1);
    // A digest released (its transfer paused) across the idle end too.
    digest.release();
    await eventually(() => h.running === 0, 'the idle thread to end again');
    expect(await digest.digest(first.length + more.length)).to.equal(sha(Buffer.concat([first, more])));
  });

  it('a digest asked again at the point it last answered is not read again, even after its thread ended (a sender\'s kept hash)', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 'kept');
    const data = randomBytes(5 * 1024 * 1024);
    await writeFile(file, data);
    const h = hasher(1, 100);
    const digest = h.open(file);
    digest.extend(data.length);
    expect(await digest.digest(data.length)).to.equal(sha(data));
    await eventually(() => h.running === 0, 'the idle thread to end');
    // A re-read could not succeed now: the answer is the one kept, and no thread starts for it.
    await unlink(file);
    expect(await digest.digest(data.length)).to.equal(sha(data));
    expect(h.running).to.equal(0);
    await expectRejectsCode(digest.digest(10), ErrorCode.IO);
  });

  it('close() ends its threads (none leaked), fails digests still owed with IO, and refuses new files', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 'c');
    await writeFile(file, randomBytes(64 * 1024 * 1024));
    const before = threadCount();
    const h = new FileHasher({ threads: 2 });
    const a = h.open(file);
    const b = h.open(file);
    a.extend(1000);
    expect(await a.digest(1000)).to.have.length(64);
    expect(h.running).to.equal(2);
    expect(threadCount()).to.be.above(before);
    // A long one still running when close() comes.
    b.extend(64 * 1024 * 1024);
    const owed = b.digest(64 * 1024 * 1024).then(() => 'resolved', (err: { code?: string }) => err.code);
    await h.close();
    expect(h.running).to.equal(0);
    const settled = await owed;
    // It may have finished just before the close; if not, it failed with IO rather than hang.
    expect(['resolved', ErrorCode.IO]).to.include(settled);
    await eventually(() => threadCount() <= before, 'the hash threads to exit');
    expect(() => h.open(file)).to.throw().with.property('code', ErrorCode.IO);
  });
});

describe('mainThreadDigest: small files (or no threads) hashed on the main thread', () => {
  afterEach(closeAll);

  it('equals node:crypto over the bytes given in order, without reading the file', async () => {
    const digest = mainThreadDigest('/nonexistent/never-read');
    const parts = Array.from({ length: 7 }, () => randomBytes(randomInt(0, 5000)));
    let at = 0;
    for (const p of parts) digest.extend((at += p.length), p);
    expect(await digest.digest(at)).to.equal(sha(Buffer.concat(parts)));
    expect(await mainThreadDigest('/nonexistent/never-read').digest(0)).to.equal(sha(Buffer.alloc(0)));
  });

  it('hashes a prefix on disk (a resume), then the bytes given after it', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 'p');
    const prefix = randomBytes(2 * 1024 * 1024 + 5);
    await writeFile(file, prefix);
    const digest = mainThreadDigest(file);
    digest.extend(prefix.length);
    const more = randomBytes(3000);
    // Given while the prefix is still being read: hashed after it, in order.
    digest.extend(prefix.length + more.length, more);
    expect(await digest.digest(prefix.length + more.length)).to.equal(sha(Buffer.concat([prefix, more])));
  });

  it('bytes that cannot be had (missing file, short file, wrong offset) make the digest reject with IO', async () => {
    const skipped = mainThreadDigest('/nonexistent/file');
    skipped.extend(10, randomBytes(10));
    skipped.extend(30, randomBytes(10));
    await expectRejectsCode(skipped.digest(30), ErrorCode.IO);
    await expectRejectsCode(skipped.digest(10), ErrorCode.IO);
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 's');
    await writeFile(file, randomBytes(100));
    const short = mainThreadDigest(file);
    short.extend(200);
    await expectRejectsCode(short.digest(200), ErrorCode.IO);
    const ahead = mainThreadDigest(file);
    ahead.extend(10, randomBytes(10));
    await expectRejectsCode(ahead.digest(20), ErrorCode.IO);
  });
});

describe('FileHasher.digestOf: which digest a partial gets', () => {
  afterEach(closeAll);

  it('small files from byte 0 on the main thread, resumes and big files on a thread, everything on the main thread with 0 threads', async () => {
    const dir = await tmpDir('relay-hasher-');
    const file = path.join(dir, 'd');
    const bytes = randomBytes(3 * 1024 * 1024);
    await writeFile(file, bytes);
    const threaded = hasher(1);
    const small = threaded.digestOf(file, 0, 4096);
    expect(threaded.running).to.equal(0);
    small.extend(4096, bytes.subarray(0, 4096));
    expect(await small.digest(4096)).to.equal(sha(bytes.subarray(0, 4096)));
    const resumed = threaded.digestOf(file, 1000, 4096);
    expect(threaded.running).to.equal(1);
    expect(await resumed.digest(1000)).to.equal(sha(bytes.subarray(0, 1000)));
    const none = hasher(0);
    const big = none.digestOf(file, bytes.length, bytes.length * 2);
    expect(await big.digest(bytes.length)).to.equal(sha(bytes));
    expect(none.running).to.equal(0);
  });
});
