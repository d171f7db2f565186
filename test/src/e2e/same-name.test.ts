import { createHash, randomBytes } from 'node:crypto';
import { rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode } from '@relayer/common';
import {
  chunkOf, closeAll, commitFile, connectedLink, expectRejectsCode, MiB, partialEntries, publishedEntries, randomFile, send, sha256File,
  startReceiver, tmpDir,
} from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('one name, several requests: a receiver keeps at most one transfer per final path', () => {
  afterEach(closeAll);

  it('an offer of another version sent right behind a commit waits for it: the confirmed file is intact', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await startReceiver();
      const link = await connectedLink(r.url);
      const bytes = randomBytes(2 * MiB);
      const o = await link.request('offer', { name: 'x.bin', size: bytes.length, mtimeMs: 1 }, 5000);
      await link.request('chunk', chunkOf(o.lease, 0, bytes.subarray(0, MiB)), 5000);
      await link.request('chunk', chunkOf(o.lease, MiB, bytes.subarray(MiB)), 5000);
      // Not awaited in between: both are on the wire before the receiver answers either.
      const [committed, next] = await Promise.all([
        commitFile(link, { lease: o.lease, sha256: sha(bytes) }, 5000),
        link.request('offer', { name: 'x.bin', size: 100, mtimeMs: 2 }, 5000),
      ]);
      expect(committed.sha256).to.equal(sha(bytes));
      expect(await sha256File(committed.path), `iteration ${i}`).to.equal(sha(bytes));
      expect(next.offset).to.equal(0);
      await closeAll();
    }
  });

  it('a new offer for the same file from another connection takes the transfer over at the same offset', async () => {
    const r = await startReceiver();
    const first = await connectedLink(r.url);
    const second = await connectedLink(r.url);
    const bytes = randomBytes(300_000);
    const a = await first.request('offer', { name: 'y.bin', size: bytes.length, mtimeMs: 1 }, 5000);
    await first.request('chunk', chunkOf(a.lease, 0, bytes.subarray(0, 100_000)), 5000);
    const b = await second.request('offer', { name: 'y.bin', size: bytes.length, mtimeMs: 1 }, 5000);
    expect(b.offset).to.equal(100_000);
    expect(b.lease).to.not.equal(a.lease);
    await expectRejectsCode(first.request('chunk', chunkOf(a.lease, 100_000, bytes.subarray(100_000)), 5000), ErrorCode.UNKNOWN_TRANSFER);
    await second.request('chunk', chunkOf(b.lease, 100_000, bytes.subarray(100_000)), 5000);
    const done = await commitFile(second, { lease: b.lease, sha256: sha(bytes) }, 5000);
    expect(await sha256File(done.path)).to.equal(sha(bytes));
  });

  it('two senders sending the same file to the same name at once both get it confirmed, and it is intact', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 8 * MiB + 3);
    const opts = { as: 'same.bin', transfer: { chunkSize: 256 * 1024, window: 4 } };
    const [a, b] = await Promise.all([send([f.path], [r.url], opts), send([f.path], [r.url], opts)]);
    for (const res of [a, b]) {
      expect(res.failed, JSON.stringify(res.failed)).to.be.empty;
      expect(res.received[0]!.sha256).to.equal(f.sha256);
    }
    expect(await sha256File(path.join(r.dir, 'same.bin'))).to.equal(f.sha256);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });

  it('a name that turns into a symlink between offer and commit is refused at commit: nothing lands outside, no partial left', async () => {
    const r = await startReceiver();
    const outside = await tmpDir();
    const link = await connectedLink(r.url);
    const bytes = randomBytes(50_000);
    const o = await link.request('offer', { name: 'sub/z.bin', size: bytes.length, mtimeMs: 1 }, 5000);
    await link.request('chunk', chunkOf(o.lease, 0, bytes), 5000);
    await symlink(outside, path.join(r.dir, 'sub'));
    await expectRejectsCode(commitFile(link, { lease: o.lease, sha256: sha(bytes) }, 5000), ErrorCode.BAD_NAME);
    expect(await publishedEntries(outside)).to.deep.equal([]);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
    // Once the symlink is gone the same file can be sent again from scratch.
    await rm(path.join(r.dir, 'sub'));
    const again = await link.request('offer', { name: 'sub/z.bin', size: bytes.length, mtimeMs: 1 }, 5000);
    expect(again.offset).to.equal(0);
  });
});
