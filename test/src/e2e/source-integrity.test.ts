import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode, PARTIAL_DIR } from '@relayer/common';
import { partialKey } from '@relayer/agent-receiver';
import {
  chunkOf, closeAll, commitFile, connectedLink, MiB, partialEntries, publishedEntries, randomFile, send, sha256File, startReceiver,
  tmpDir, type RandomFile,
} from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('source integrity: what is published is exactly one version of the source file', () => {
  afterEach(closeAll);

  it('a source overwritten in place (same size, other bytes) while it is sent fails SOURCE_CHANGED and publishes nothing', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 16 * MiB);
    const v2 = randomBytes(f.size);
    let overwrittenAt: number | undefined;
    const res = await send([f.path], [r.url], {
      as: 'torn.bin',
      // A small window keeps the sender's read-ahead short: most of the file is read after the overwrite.
      transfer: { chunkSize: MiB, window: 2, bwlimit: 8 * MiB },
      onEvent: (e) => {
        if (e.type === 'progress' && e.acked >= 4 * MiB && overwrittenAt === undefined) {
          overwrittenAt = e.acked;
          // Synchronous, so it is complete before the sender reads its next chunk.
          writeFileSync(f.path, v2, { flag: 'r+' });
        }
      },
    });
    expect(overwrittenAt, 'no progress event with acked >= 4 MiB').to.not.equal(undefined);
    expect(overwrittenAt!).to.be.below(f.size);
    expect(res.ok).to.equal(false);
    expect(res.received, JSON.stringify(res.received)).to.be.empty;
    expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.SOURCE_CHANGED]);
    expect(await publishedEntries(r.dir)).to.not.include('torn.bin');

    // Sent again, the new version arrives whole (the old version's partial is not spliced in).
    const again = await send([f.path], [r.url], { as: 'torn.bin' });
    expect(again.ok, JSON.stringify(again.failed)).to.equal(true);
    expect(again.received[0]!.sha256).to.equal(sha(v2));
    expect(await sha256File(path.join(r.dir, 'torn.bin'))).to.equal(sha(v2));
  });

  describe('a partial is resumed only when its bytes are the sender\'s bytes, not just its size and mtime', () => {
    const size = 4 * MiB + 5;
    const M = new Date('2021-06-01T12:00:00.123Z');

    /** Leaves a partial of `bytes` (the first `chunks` MiB) on the receiver, offered as size/mtimeMs. */
    async function leavePartial(url: string, name: string, bytes: Uint8Array, mtimeMs: number, chunks: number): Promise<void> {
      const link = await connectedLink(url);
      const offer = await link.request('offer', { name, size: bytes.length, mtimeMs }, 5000);
      expect(offer.offset).to.equal(0);
      for (let i = 0; i < chunks; i++) {
        const ack = await link.request('chunk', chunkOf(offer.lease, i * MiB, bytes.subarray(i * MiB, (i + 1) * MiB)), 5000);
        expect(ack.offset).to.equal((i + 1) * MiB);
      }
      link.close();
    }

    /** A random file whose mtime is set to M; returns it with the mtimeMs the sender will see. */
    async function fileAtM(): Promise<RandomFile & { mtimeMs: number }> {
      const f = await randomFile(await tmpDir(), size);
      await utimes(f.path, M, M);
      return { ...f, mtimeMs: (await stat(f.path)).mtimeMs };
    }

    it('same size and mtime but different bytes: the sender starts over at 0 and the new version arrives whole', async () => {
      const r = await startReceiver();
      const v2 = await fileAtM();
      const v1 = randomBytes(size);
      await leavePartial(r.url, 'twin.bin', v1, v2.mtimeMs, 2);
      expect(await partialEntries(r.dir)).to.have.length(2);

      const res = await send([v2.path], [r.url], { as: 'twin.bin', transfer: { chunkSize: MiB } });
      expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
      const c = res.received[0]!;
      expect(c.sha256).to.equal(v2.sha256);
      expect(await sha256File(path.join(r.dir, 'twin.bin'))).to.equal(v2.sha256);
      expect(c.resumedFrom).to.equal(0);
      expect(c.bytesSent).to.equal(size);
      expect(await partialEntries(r.dir)).to.deep.equal([]);
    });

    it('same size, mtime and bytes: the partial is resumed', async () => {
      const r = await startReceiver();
      const f = await fileAtM();
      await leavePartial(r.url, 'same.bin', await readFile(f.path), f.mtimeMs, 2);

      const res = await send([f.path], [r.url], { as: 'same.bin', transfer: { chunkSize: MiB } });
      expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
      const c = res.received[0]!;
      expect(c.sha256).to.equal(f.sha256);
      expect(await sha256File(path.join(r.dir, 'same.bin'))).to.equal(f.sha256);
      expect(c.resumedFrom).to.equal(2 * MiB);
      expect(c.bytesSent).to.be.below(size);
      expect(c.bytesSent).to.equal(size - 2 * MiB);
    });
  });

  describe('file modes', () => {
    it('a partial is 0600 while in progress; the published file is 0644', async () => {
      const r = await startReceiver();
      const link = await connectedLink(r.url);
      const bytes = randomBytes(3 * MiB);
      const offer = await link.request('offer', { name: 'mode.bin', size: bytes.length, mtimeMs: 1 }, 5000);
      await link.request('chunk', chunkOf(offer.lease, 0, bytes.subarray(0, MiB)), 5000);
      const key = partialKey('mode.bin');
      expect((await partialEntries(r.dir)).sort()).to.deep.equal([`${key}.json`, `${key}.part`]);
      for (const ext of ['part', 'json']) {
        const mode = (await stat(path.join(r.dir, PARTIAL_DIR, `${key}.${ext}`))).mode & 0o777;
        expect(mode.toString(8), `${key}.${ext}`).to.equal('600');
      }
      await link.request('chunk', chunkOf(offer.lease, MiB, bytes.subarray(MiB)), 5000);
      const done = await commitFile(link, { lease: offer.lease, sha256: sha(bytes) }, 5000);
      expect(done.path).to.equal(path.join(r.dir, 'mode.bin'));
      expect(((await stat(done.path)).mode & 0o777).toString(8)).to.equal('644');
    });

    it('a file published by send() is 0644 whatever the source file\'s mode', async () => {
      const r = await startReceiver();
      const src = path.join(await tmpDir(), 'private.bin');
      await writeFile(src, randomBytes(2 * MiB + 1), { mode: 0o600 });
      expect(((await stat(src)).mode & 0o777).toString(8)).to.equal('600');
      const res = await send([src], [r.url], { as: 'sub/private.bin' });
      expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
      const published = path.join(r.dir, 'sub/private.bin');
      expect(((await stat(published)).mode & 0o777).toString(8)).to.equal('644');
      expect(await sha256File(published)).to.equal(await sha256File(src));
    });
  });
});
