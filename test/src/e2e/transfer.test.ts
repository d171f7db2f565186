import { createHash } from 'node:crypto';
import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { MAX_CHUNK_SIZE } from '@relayer/common';
import {
  closeAll, MiB, partialEntries, publishedEntries, randomFile, send, sha256File, startReceiver, tmpDir,
  type RandomFile, type SendResult, type TestReceiver,
} from '../support/util.js';

/** The one confirmation of a send that must have succeeded, checked against the source and the disk. */
async function expectDelivered(res: SendResult, r: TestReceiver, f: RandomFile, name: string): Promise<SendResult['received'][number]> {
  expect(res.failed, JSON.stringify(res.failed)).to.be.empty;
  expect(res.ok).to.equal(true);
  const mine = res.received.filter((c) => c.name === name && c.target === r.url);
  expect(mine).to.have.length(1);
  const c = mine[0]!;
  expect(c.name).to.equal(name);
  expect(c.size).to.equal(f.size);
  expect(c.sha256).to.equal(f.sha256);
  expect(c.path).to.equal(path.join(r.dir, ...name.split('/')));
  expect((await stat(c.path)).size).to.equal(f.size);
  expect(await sha256File(c.path)).to.equal(f.sha256);
  return c;
}

describe('transfers: a direct send publishes byte-identical files and confirms them', () => {
  afterEach(closeAll);

  const sizes: Array<[string, number, number | undefined]> = [
    ['an empty file', 0, undefined],
    ['a 1-byte file', 1, undefined],
    ['a file of exactly one chunk', 256 * 1024, 256 * 1024],
    ['a file one byte over a chunk', 256 * 1024 + 1, 256 * 1024],
    ['a 64 MiB random file', 64 * MiB, undefined],
  ];
  for (const [what, size, chunkSize] of sizes) {
    it(`delivers ${what} and confirms name, size, sha256 and path`, async function () {
      if (size >= 64 * MiB) this.slow(10_000);
      const r = await startReceiver();
      const f = await randomFile(await tmpDir(), size);
      const name = path.basename(f.path);
      const res = await send([f.path], [r.url], { transfer: chunkSize ? { chunkSize } : {} });
      const c = await expectDelivered(res, r, f, name);
      expect(c.unchanged).to.equal(false);
      expect(c.bytesSent).to.equal(size);
      expect(c.resumedFrom).to.equal(0);
      expect(await partialEntries(r.dir)).to.deep.equal([]);
      expect(await publishedEntries(r.dir)).to.deep.equal([name]);
    });
  }

  it('accepts chunks of the largest size (MAX_CHUNK_SIZE) in one message each', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 5 * MAX_CHUNK_SIZE + 1);
    const res = await send([f.path], [r.url], { transfer: { chunkSize: MAX_CHUNK_SIZE, window: 2 } });
    await expectDelivered(res, r, f, path.basename(f.path));
  });

  it('creates the sub-folders named by --as', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 10_000);
    const res = await send([f.path], [r.url], { as: 'sub/dir/name.bin' });
    await expectDelivered(res, r, f, 'sub/dir/name.bin');
    expect((await stat(path.join(r.dir, 'sub', 'dir'))).isDirectory()).to.equal(true);
    expect(await publishedEntries(r.dir)).to.deep.equal(['sub']);
  });

  it('sends a directory as its tree under the directory\'s name', async () => {
    const r = await startReceiver();
    const src = path.join(await tmpDir(), 'tree');
    const a = await randomFile(src, 1000, 'a.bin');
    const b = await randomFile(src, 2000, 'deep/er/b.bin');
    const empty = await randomFile(src, 0, 'deep/empty');
    const res = await send([src], [r.url]);
    expect(res.ok).to.equal(true);
    expect(res.received.map((c) => c.name).sort()).to.deep.equal(['tree/a.bin', 'tree/deep/empty', 'tree/deep/er/b.bin']);
    for (const [f, name] of [[a, 'tree/a.bin'], [b, 'tree/deep/er/b.bin'], [empty, 'tree/deep/empty']] as const) {
      expect(await sha256File(path.join(r.dir, name))).to.equal(f.sha256);
    }
  });

  it('confirms an identical re-send as unchanged without sending a byte', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 3 * MiB + 5);
    const name = path.basename(f.path);
    const first = await send([f.path], [r.url]);
    await expectDelivered(first, r, f, name);
    const before = await stat(path.join(r.dir, name));

    const again = await send([f.path], [r.url]);
    const c = await expectDelivered(again, r, f, name);
    expect(c.unchanged).to.equal(true);
    expect(c.bytesSent).to.equal(0);
    const after = await stat(path.join(r.dir, name));
    expect(after.ino).to.equal(before.ino); // not re-published
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });

  it('replaces a changed file of the same size atomically: a new file is renamed over the old one', async () => {
    const r = await startReceiver();
    const dir = await tmpDir();
    const old = await randomFile(dir, 2 * MiB, 'data.bin');
    await expectDelivered(await send([old.path], [r.url]), r, old, 'data.bin');
    const dest = path.join(r.dir, 'data.bin');
    // A reader that opened the old file before the replacement must keep reading the old bytes.
    const reader = await open(dest, 'r');
    try {
      const inoBefore = (await reader.stat()).ino;
      const changed = await randomFile(dir, 2 * MiB, 'data.bin');
      expect(changed.sha256).to.not.equal(old.sha256);

      const c = await expectDelivered(await send([changed.path], [r.url]), r, changed, 'data.bin');
      expect(c.unchanged).to.equal(false);
      expect(c.bytesSent).to.equal(changed.size);
      expect((await stat(dest)).ino).to.not.equal(inoBefore);
      const oldBytes = Buffer.alloc(old.size);
      await reader.read(oldBytes, 0, old.size, 0);
      expect(createHash('sha256').update(oldBytes).digest('hex')).to.equal(old.sha256);
    } finally {
      await reader.close();
    }
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });

  it('replaces a file of a different size', async () => {
    const r = await startReceiver();
    const dir = await tmpDir();
    await writeFile(path.join(r.dir, 'v.bin'), 'old contents');
    const f = await randomFile(dir, 100_000, 'v.bin');
    await expectDelivered(await send([f.path], [r.url]), r, f, 'v.bin');
  });

  it('delivers 8 different files sent at once to one receiver, each intact', async () => {
    const r = await startReceiver();
    const dir = await tmpDir();
    const files = await Promise.all(Array.from({ length: 8 }, (_, i) => randomFile(dir, 2 * MiB + i * 4099, `f${i}.bin`)));
    const results = await Promise.all(files.map((f) => send([f.path], [r.url], { transfer: { chunkSize: 256 * 1024 } })));
    for (let i = 0; i < files.length; i++) await expectDelivered(results[i]!, r, files[i]!, `f${i}.bin`);
    expect(await publishedEntries(r.dir)).to.have.length(8);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });

  it('fans one file out to two receivers in one send', async () => {
    const r1 = await startReceiver();
    const r2 = await startReceiver();
    const f = await randomFile(await tmpDir(), 5 * MiB + 1);
    const name = path.basename(f.path);
    const res = await send([f.path], [r1.url, r2.url]);
    expect(res.received).to.have.length(2);
    await expectDelivered(res, r1, f, name);
    await expectDelivered(res, r2, f, name);
    const done = res.events.at(-1)!;
    expect(done).to.include({ type: 'done', ok: true, confirmed: 2, failed: 0 });
  });

  it('sends several files to several receivers (every file to every target)', async () => {
    const r1 = await startReceiver();
    const r2 = await startReceiver();
    const dir = await tmpDir();
    await mkdir(path.join(dir, 'x'));
    const a = await randomFile(dir, 70_000, 'x/a.bin');
    const b = await randomFile(dir, 0, 'x/b.bin');
    const res = await send([path.join(dir, 'x')], [r1.url, r2.url]);
    expect(res.received).to.have.length(4);
    for (const r of [r1, r2]) {
      await expectDelivered(res, r, a, 'x/a.bin');
      await expectDelivered(res, r, b, 'x/b.bin');
    }
  });
});
