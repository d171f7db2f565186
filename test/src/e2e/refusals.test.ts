import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode, PARTIAL_DIR } from '@relayer/common';
import type { Link } from '@relayer/agent-sender';
import {
  chunkOf, closeAll, commitFile, connectedLink, expectRejectsCode, MiB, partialEntries, publishedEntries, randomFile, send,
  sha256File, startReceiver, tmpDir, type TestReceiver,
} from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Nothing was published and no partial is left behind. */
async function expectNothingWritten(r: TestReceiver, also: string[] = []): Promise<void> {
  expect(await publishedEntries(r.dir)).to.deep.equal(also);
  expect(await partialEntries(r.dir)).to.deep.equal([]);
}

describe('refusals: every refusal has its code, and leaves nothing under the final name or in .relay-partial', () => {
  afterEach(closeAll);

  describe('BAD_NAME', () => {
    const badNames: Array<[string, string]> = [
      ['an absolute path', '/tmp/relay-escape.bin'],
      ['a climb out of the folder', '../escape.bin'],
      ['a climb from a sub-folder', 'sub/../../escape.bin'],
      ['a control character', 'bad\u0007name.bin'],
      ['a NUL byte', 'bad\u0000name.bin'],
      ['a path into .relay-partial', `${PARTIAL_DIR}/x`],
      ['a backslash', 'sub\\x.bin'],
    ];

    for (const [what, name] of badNames) {
      it(`the receiver refuses an offer naming ${what}`, async () => {
        const r = await startReceiver();
        const link = await connectedLink(r.url);
        const err = await expectRejectsCode(link.request('offer', { name, size: 10, mtimeMs: 1 }, 5000), ErrorCode.BAD_NAME);
        expect(err.message).to.contain('refused name');
        await expectNothingWritten(r);
        expect(await readdir(path.dirname(r.dir))).to.not.include('escape.bin');
      });

      it(`a send with as: ${what} is refused by the sender with BAD_NAME before connecting`, async () => {
        const r = await startReceiver();
        const f = await randomFile(await tmpDir(), 100);
        await expectRejectsCode(send([f.path], [r.url], { as: name }), ErrorCode.BAD_NAME);
        await expectNothingWritten(r);
      });
    }

    it('refuses a name through a symlink inside --dir (the sender cannot know): nothing lands at the link\'s target', async () => {
      const r = await startReceiver();
      const outside = await tmpDir();
      await symlink(outside, path.join(r.dir, 'link'));
      const f = await randomFile(await tmpDir(), 5000);
      const res = await send([f.path], [r.url], { as: 'link/x.bin' });
      expect(res.ok).to.equal(false);
      expect(res.received).to.be.empty;
      expect(res.failed).to.have.length(1);
      expect(res.failed[0]!.code).to.equal(ErrorCode.BAD_NAME);
      expect(await readdir(outside)).to.deep.equal([]);
      await expectNothingWritten(r, ['link']);
    });

    it('refuses a symlink as the final name: the file it points at is not overwritten', async () => {
      const r = await startReceiver();
      const outside = await tmpDir();
      const victim = await randomFile(outside, 100, 'victim');
      await symlink(victim.path, path.join(r.dir, 'target.bin'));
      const f = await randomFile(await tmpDir(), 100);
      const res = await send([f.path], [r.url], { as: 'target.bin' });
      expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.BAD_NAME]);
      expect(await sha256File(victim.path)).to.equal(victim.sha256);
      await expectNothingWritten(r, ['target.bin']);
    });

    it('refuses an existing directory as the final name', async () => {
      const r = await startReceiver();
      await mkdir(path.join(r.dir, 'taken'));
      const f = await randomFile(await tmpDir(), 100);
      const res = await send([f.path], [r.url], { as: 'taken' });
      expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.BAD_NAME]);
      expect((await stat(path.join(r.dir, 'taken'))).isDirectory()).to.equal(true);
      await expectNothingWritten(r, ['taken']);
    });
  });

  it('refuses a file over --max-file-size with TOO_LARGE (a file of exactly the limit is accepted)', async () => {
    const r = await startReceiver({ maxFileSize: 100_000 });
    const dir = await tmpDir();
    const big = await randomFile(dir, 100_001);
    const res = await send([big.path], [r.url]);
    expect(res.ok).to.equal(false);
    expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.TOO_LARGE]);
    await expectNothingWritten(r);

    const exact = await randomFile(dir, 100_000);
    expect((await send([exact.path], [r.url])).ok).to.equal(true);
  });

  it('refuses a file that would leave less than --min-free on the disk with DISK_FULL', async () => {
    const r = await startReceiver({ minFree: Number.MAX_SAFE_INTEGER });
    const f = await randomFile(await tmpDir(), 1000);
    const res = await send([f.path], [r.url]);
    expect(res.ok).to.equal(false);
    expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.DISK_FULL]);
    await expectNothingWritten(r);
  });

  describe('raw protocol abuse on one transfer', () => {
    const size = 100_000;
    let r: TestReceiver;
    let link: Link;
    let bytes: Buffer;
    let transfer: string;

    beforeEach(async () => {
      r = await startReceiver();
      link = await connectedLink(r.url);
      bytes = randomBytes(size);
      transfer = (await link.request('offer', { name: 'raw.bin', size, mtimeMs: 1 }, 5000)).lease;
    });

    it('refuses a chunk that ends beyond the offered size with OFFSET and drops the transfer and its partial', async () => {
      await link.request('chunk', chunkOf(transfer, 0, bytes.subarray(0, 50_000)), 5000);
      await expectRejectsCode(link.request('chunk', chunkOf(transfer, 50_000, Buffer.alloc(50_001)), 5000), ErrorCode.OFFSET);
      await expectNothingWritten(r);
      // The transfer is over: its lease no longer takes chunks.
      await expectRejectsCode(link.request('chunk', chunkOf(transfer, 50_000, bytes.subarray(50_000)), 5000), ErrorCode.UNKNOWN_TRANSFER);
      // A new offer starts from scratch.
      expect((await link.request('offer', { name: 'raw.bin', size, mtimeMs: 1 }, 5000)).offset).to.equal(0);
    });

    it('refuses a chunk starting past the end with OFFSET', async () => {
      await expectRejectsCode(link.request('chunk', chunkOf(transfer, size + 10, Buffer.alloc(1)), 5000), ErrorCode.OFFSET);
      await expectNothingWritten(r);
    });

    it('does not take a chunk that leaves a gap: the ack names the contiguous offset to go back to', async () => {
      await link.request('chunk', chunkOf(transfer, 0, bytes.subarray(0, 10_000)), 5000);
      const gap = await link.request('chunk', chunkOf(transfer, 20_000, bytes.subarray(20_000, 30_000)), 5000);
      expect(gap).to.deep.equal({ offset: 10_000, taken: false });
      const dup = await link.request('chunk', chunkOf(transfer, 0, bytes.subarray(0, 10_000)), 5000);
      expect(dup).to.deep.equal({ offset: 10_000, taken: false });
      const next = await link.request('chunk', chunkOf(transfer, 10_000, bytes.subarray(10_000)), 5000);
      expect(next).to.deep.equal({ offset: size, taken: true });
      const done = await commitFile(link, { lease: transfer, sha256: sha(bytes) }, 5000);
      expect(await sha256File(done.path)).to.equal(sha(bytes));
    });

    it('answers a corrupted chunk with CHECKSUM and then accepts the correct chunk at the same offset', async () => {
      await link.request('chunk', chunkOf(transfer, 0, bytes.subarray(0, 40_000)), 5000);
      const piece = bytes.subarray(40_000);
      const good = chunkOf(transfer, 40_000, piece);
      await expectRejectsCode(link.request('chunk', { ...good, crc: (good.crc + 1) >>> 0 }, 5000), ErrorCode.CHECKSUM);
      // Bytes flipped in flight, crc of the original: same answer.
      const flipped = Buffer.from(piece);
      flipped[5]! ^= 0x01;
      await expectRejectsCode(link.request('chunk', { ...good, data: flipped }, 5000), ErrorCode.CHECKSUM);
      const ack = await link.request('chunk', good, 5000);
      expect(ack.offset).to.equal(size);
      const done = await commitFile(link, { lease: transfer, sha256: sha(bytes) }, 5000);
      expect(done).to.include({ name: 'raw.bin', size, sha256: sha(bytes), unchanged: false });
      expect(await sha256File(path.join(r.dir, 'raw.bin'))).to.equal(sha(bytes));
      expect(await partialEntries(r.dir)).to.deep.equal([]);
    });

    it('refuses a commit with the wrong sha256 with CHECKSUM: nothing renamed, partial removed', async () => {
      await link.request('chunk', chunkOf(transfer, 0, bytes), 5000);
      const wrong = sha(Buffer.from('something else'));
      await expectRejectsCode(commitFile(link, { lease: transfer, sha256: wrong }, 5000), ErrorCode.CHECKSUM);
      await expectNothingWritten(r);
      await expectRejectsCode(commitFile(link, { lease: transfer, sha256: sha(bytes) }, 5000), ErrorCode.UNKNOWN_TRANSFER);
    });

    it('refuses a commit before all bytes arrived with OFFSET and keeps the transfer open for the rest', async () => {
      await link.request('chunk', chunkOf(transfer, 0, bytes.subarray(0, 60_000)), 5000);
      await expectRejectsCode(commitFile(link, { lease: transfer, sha256: sha(bytes) }, 5000), ErrorCode.OFFSET);
      expect(await exists(path.join(r.dir, 'raw.bin'))).to.equal(false);
      await link.request('chunk', chunkOf(transfer, 60_000, bytes.subarray(60_000)), 5000);
      const done = await commitFile(link, { lease: transfer, sha256: sha(bytes) }, 5000);
      expect(done.sha256).to.equal(sha(bytes));
    });

    it('only the connection holding a transfer may write to it', async () => {
      const other = await connectedLink(r.url);
      await expectRejectsCode(other.request('chunk', chunkOf(transfer, 0, bytes), 5000), ErrorCode.UNKNOWN_TRANSFER);
      await expectRejectsCode(commitFile(other, { lease: transfer, sha256: sha(bytes) }, 5000), ErrorCode.UNKNOWN_TRANSFER);
      // ...and the rightful owner is unaffected.
      expect((await link.request('chunk', chunkOf(transfer, 0, bytes), 5000)).offset).to.equal(size);
    });
  });

  it('one bad transfer does not affect a concurrent good one', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 16 * MiB + 9);
    const good = send([f.path], [r.url], { as: 'good.bin', transfer: { chunkSize: 256 * 1024, window: 4 } });

    const link = await connectedLink(r.url);
    const bad = async (): Promise<void> => {
      const bytes = randomBytes(300_000);
      const { lease: transfer } = await link.request('offer', { name: 'bad.bin', size: bytes.length, mtimeMs: 1 }, 5000);
      for (let off = 0; off < bytes.length; off += 50_000) {
        const c = chunkOf(transfer, off, bytes.subarray(off, off + 50_000));
        await expectRejectsCode(link.request('chunk', { ...c, crc: (c.crc ^ 1) >>> 0 }, 5000), ErrorCode.CHECKSUM);
        await link.request('chunk', c, 5000);
      }
      await expectRejectsCode(commitFile(link, { lease: transfer, sha256: sha(Buffer.alloc(1)) }, 5000), ErrorCode.CHECKSUM);
      const second = await link.request('offer', { name: 'bad2.bin', size: 10, mtimeMs: 1 }, 5000);
      await expectRejectsCode(link.request('chunk', chunkOf(second.lease, 5, Buffer.alloc(6)), 5000), ErrorCode.OFFSET);
      await expectRejectsCode(link.request('offer', { name: '../bad3.bin', size: 1, mtimeMs: 1 }, 5000), ErrorCode.BAD_NAME);
    };
    const [res] = await Promise.all([good, bad()]);
    expect(res.ok).to.equal(true);
    expect(res.received[0]!.sha256).to.equal(f.sha256);
    expect(await sha256File(path.join(r.dir, 'good.bin'))).to.equal(f.sha256);
    await expectNothingWritten(r, ['good.bin']);
  });
});
