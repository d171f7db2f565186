import { open, readFile, stat, truncate } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { statfs } from 'node:fs/promises';
import { expect } from 'chai';
import {
  chunkOf, closeAll, connectedLink, MiB, randomFile, send, sha256File, startReceiver, tmpDir,
} from '../support/util.js';

/** Bytes a file takes on its disk (st_blocks), as `du` counts them. */
async function onDisk(file: string): Promise<number> {
  return (await stat(file)).blocks * 512;
}

/** A `size`-byte file of holes, with random bytes written at each of `at` (offset → length). */
async function sparseFile(dir: string, name: string, size: number, at: Array<[number, number]>): Promise<string> {
  const file = path.join(dir, name);
  await truncate(file, 0).catch(() => undefined);
  const fh = await open(file, 'w');
  try {
    await fh.truncate(size);
    for (const [offset, length] of at) await fh.write(randomBytes(length), 0, length, offset);
  } finally {
    await fh.close();
  }
  return file;
}

describe('sparse sources keep their holes on the receiver (as rsync --sparse)', function () {
  this.timeout(120_000);
  afterEach(closeAll);

  it('a 256 MiB file of holes with data at the start, middle and end arrives byte-identical and takes about what the source takes', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const size = 256 * MiB;
    const file = await sparseFile(src, 'disk.img', size, [[0, 4096], [100 * MiB + 123, 3 * MiB], [size - 5000, 5000]]);
    const res = await send([file], [r.url]);
    expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
    const dest = path.join(r.dir, 'disk.img');
    expect((await stat(dest)).size).to.equal(size);
    expect(await sha256File(dest)).to.equal(await sha256File(file));
    // The source takes ~3 MiB; the copy may round each data run up to whole hole blocks, never 256 MiB.
    expect(await onDisk(dest)).to.be.below((await onDisk(file)) + 2 * MiB);
  });

  it('a file that is all holes (truncate -s) arrives as all holes', async () => {
    const r = await startReceiver();
    const file = await sparseFile(await tmpDir('relay-src-'), 'empty.img', 64 * MiB, []);
    const res = await send([file], [r.url]);
    expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
    const dest = path.join(r.dir, 'empty.img');
    expect((await stat(dest)).size).to.equal(64 * MiB);
    expect(await onDisk(dest)).to.be.below(MiB);
    expect(await sha256File(dest)).to.equal(await sha256File(file));
  });

  it('a fully allocated file full of zeros stays fully allocated (a swap file or a preallocated database must not get holes)', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const file = path.join(src, 'zeros.bin');
    await (await open(file, 'w')).close();
    const fh = await open(file, 'r+');
    await fh.write(Buffer.alloc(8 * MiB), 0, 8 * MiB, 0);
    await fh.close();
    expect(await onDisk(file)).to.be.at.least(8 * MiB);
    const res = await send([file], [r.url]);
    expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
    expect(await onDisk(path.join(r.dir, 'zeros.bin'))).to.be.at.least(8 * MiB);
  });

  it('resumes a sparse file from an earlier run\'s partial and still keeps its holes', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const size = 32 * MiB;
    const file = await sparseFile(src, 'vm.img', size, [[2 * MiB, MiB], [20 * MiB, 2 * MiB]]);
    const { mtimeMs, blocks } = await stat(file);
    const bytes = await readFile(file);
    // An earlier run that stopped after 4 MiB (holes, data, holes), via the protocol as the sender speaks it.
    const link = await connectedLink(r.url);
    const offer = await link.request('offer', { name: 'vm.img', size, mtimeMs, allocated: blocks * 512 }, 5000);
    for (let at = 0; at < 4 * MiB; at += MiB) await link.request('chunk', chunkOf(offer.lease, at, bytes.subarray(at, at + MiB)), 5000);
    link.close();

    const res = await send([file], [r.url]);
    expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
    expect(res.received[0]!.resumedFrom).to.equal(4 * MiB);
    const dest = path.join(r.dir, 'vm.img');
    expect(await sha256File(dest)).to.equal(await sha256File(file));
    expect(await onDisk(dest)).to.be.below(6 * MiB);
  });

  it('a receiver whose free space is smaller than the file but larger than what the source takes accepts it', async () => {
    const inbox = await tmpDir('relay-inbox-');
    const { bavail, bsize } = await statfs(inbox);
    const free = bavail * bsize;
    // Room for ~64 MiB above --min-free: a fully allocated 256 MiB file would be DISK_FULL.
    const r = await startReceiver({ dir: inbox, minFree: free - 64 * MiB });
    const src = await tmpDir('relay-src-');
    const file = await sparseFile(src, 'big.img', 256 * MiB, [[MiB, MiB]]);
    const res = await send([file], [r.url]);
    expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
    expect(await sha256File(path.join(inbox, 'big.img'))).to.equal(await sha256File(file));
    const dense = await randomFile(src, 128 * MiB, 'dense.bin');
    const refused = await send([dense.path], [r.url]);
    expect(refused.failed.map((e) => e.code)).to.deep.equal(['DISK_FULL']);
  });
});
