import { createHash } from 'node:crypto';
import { open, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode, PARTIAL_DIR } from '@relayer/common';
import { partialKey } from '@relayer/agent-receiver';
import { FaultProxy } from '../support/proxy.js';
import {
  chunkOf, closeAll, commitFile, connectedLink, freePort, MiB, partialEntries, randomFile, send, sha256File, startReceiver,
  startReceiverProcess, tmpDir, track, type ReceiverProcess,
} from '../support/util.js';

describe('resume: an interrupted transfer continues where the receiver stopped', () => {
  afterEach(closeAll);

  async function cutOnce(): Promise<{ res: Awaited<ReturnType<typeof send>>; proxy: FaultProxy; size: number; sha256: string; dest: string; chunkSize: number; window: number }> {
    const r = await startReceiver();
    const proxy = new FaultProxy(r.address().port, { cutAfterBytes: 10 * MiB });
    await proxy.start();
    track(() => proxy.close());
    const f = await randomFile(await tmpDir(), 32 * MiB + 123);
    const chunkSize = MiB;
    const window = 4;
    const res = await send([f.path], [proxy.url], { as: 'cut.bin', transfer: { chunkSize, window } });
    return { res, proxy, size: f.size, sha256: f.sha256, dest: path.join(r.dir, 'cut.bin'), chunkSize, window };
  }

  it('survives a connection cut mid-transfer: the file arrives identical and at most one window is sent twice', async () => {
    const { res, proxy, size, sha256, dest, chunkSize, window } = await cutOnce();
    expect(res.failed, JSON.stringify(res.failed)).to.be.empty;
    expect(res.ok).to.equal(true);
    expect(proxy.cutsDone).to.equal(1);
    expect(proxy.connections).to.be.at.least(2);
    const c = res.received[0]!;
    expect(c.sha256).to.equal(sha256);
    expect(await sha256File(dest)).to.equal(sha256);
    expect(c.bytesSent).to.be.at.least(size);
    expect(c.bytesSent - size).to.be.at.most(window * chunkSize);
    expect(await partialEntries(path.dirname(dest))).to.deep.equal([]);
  });

  it('reports resumedFrom > 0 after resuming within the same run', async () => {
    const { res } = await cutOnce();
    expect(res.ok).to.equal(true);
    expect(res.received[0]!.resumedFrom).to.be.greaterThan(0);
  });

  it('reports resumedFrom > 0 when a partial from an earlier run is resumed', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 4 * MiB);
    const { mtimeMs } = await stat(f.path);
    // An earlier run that stopped after 1 MiB, via the raw protocol.
    const link = await connectedLink(r.url);
    const offer = await link.request('offer', { name: 'early.bin', size: f.size, mtimeMs }, 5000);
    const bytes = await readFile(f.path);
    await link.request('chunk', chunkOf(offer.lease, 0, bytes.subarray(0, MiB)), 5000);
    link.close();

    const res = await send([f.path], [r.url], { as: 'early.bin' });
    expect(res.ok).to.equal(true);
    const c = res.received[0]!;
    expect(c.resumedFrom).to.equal(MiB);
    expect(c.bytesSent).to.equal(f.size - MiB);
    expect(await sha256File(path.join(r.dir, 'early.bin'))).to.equal(f.sha256);
  });

  it('survives the receiver process being killed (kill -9) and restarted on the same port and folder', async function () {
    this.slow(15_000);
    const dir = await tmpDir('relay-inbox-');
    const port = await freePort();
    const first = await startReceiverProcess({ dir, port });
    const f = await randomFile(await tmpDir(), 16 * MiB + 7);
    const chunkSize = MiB;
    const window = 4;

    let restarted: Promise<ReceiverProcess> | undefined;
    const killAndRestart = async (): Promise<ReceiverProcess> => {
      process.kill(first.pid, 'SIGKILL');
      const { signal } = await first.exited;
      expect(signal).to.equal('SIGKILL');
      return startReceiverProcess({ dir, port });
    };
    const res = await send([f.path], [first.url], {
      as: 'big.bin',
      transfer: { chunkSize, window, bwlimit: 8 * MiB, timeoutMs: 60_000 },
      onEvent: (e) => {
        if (e.type === 'progress' && e.acked >= 4 * MiB && !restarted) restarted = killAndRestart();
      },
    });
    expect(restarted, 'the receiver was never killed: no progress past 4 MiB').to.not.equal(undefined);
    const second = await restarted!;

    expect(res.failed, JSON.stringify(res.failed)).to.be.empty;
    expect(res.ok).to.equal(true);
    const c = res.received[0]!;
    expect(c.sha256).to.equal(f.sha256);
    expect(await sha256File(path.join(dir, 'big.bin'))).to.equal(f.sha256);
    // The new process picked the partial up from disk instead of starting over.
    const resumed = second.logs.find((l) => l.msg === 'offer accepted: resuming');
    expect(resumed, second.stderr()).to.not.equal(undefined);
    expect(resumed!.offset as number).to.be.at.least(4 * MiB);
    expect(c.resumedFrom).to.be.at.least(4 * MiB);
    expect(c.bytesSent - f.size).to.be.at.most(window * chunkSize);
    expect(await partialEntries(dir)).to.deep.equal([]);
  });

  describe('a partial is resumed only for the same source version', () => {
    const size = 3 * MiB;
    const half = 1536 * 1024;

    /** Sends the first half of `bytes` as `name` to a receiver on `dir`, then stops it: a partial stays on disk. */
    async function leavePartial(dir: string, name: string, mtimeMs: number, bytes: Buffer): Promise<void> {
      const r = await startReceiver({ dir });
      const link = await connectedLink(r.url);
      const offer = await link.request('offer', { name, size, mtimeMs }, 5000);
      await link.request('chunk', chunkOf(offer.lease, 0, bytes.subarray(0, half)), 5000);
      link.close();
      await r.close();
    }

    it('re-offering the same size and mtime resumes; a different mtime starts over at 0 (same receiver)', async () => {
      const r = await startReceiver();
      const link = await connectedLink(r.url);
      const data = (await randomFile(await tmpDir(), size)).path;
      const bytes = await readFile(data);
      const offer = await link.request('offer', { name: 'v.bin', size, mtimeMs: 1000 }, 5000);
      expect(offer.offset).to.equal(0);
      const ack = await link.request('chunk', chunkOf(offer.lease, 0, bytes.subarray(0, half)), 5000);
      expect(ack.offset).to.equal(half);

      const same = await link.request('offer', { name: 'v.bin', size, mtimeMs: 1000 }, 5000);
      expect(same.offset).to.equal(half);

      const changed = await link.request('offer', { name: 'v.bin', size, mtimeMs: 2000 }, 5000);
      expect(changed.offset).to.equal(0);
      // The old version's lease is gone for good: its chunks are refused with SUPERSEDED (final, no retry).
      const err = await link.request('chunk', chunkOf(same.lease, half, bytes.subarray(half, half + 10)), 5000).catch((e: unknown) => e);
      expect(err).to.have.property('code', ErrorCode.SUPERSEDED);

      // The new version arrives whole, not spliced onto the old bytes.
      const fresh = Buffer.alloc(size, 7);
      await link.request('chunk', chunkOf(changed.lease, 0, fresh.subarray(0, half)), 5000);
      await link.request('chunk', chunkOf(changed.lease, half, fresh.subarray(half)), 5000);
      const sha256 = createHash('sha256').update(fresh).digest('hex');
      const done = await commitFile(link, { lease: changed.lease, sha256 }, 5000);
      expect(done.sha256).to.equal(sha256);
      expect(await sha256File(path.join(r.dir, 'v.bin'))).to.equal(sha256);
    });

    it('a partial kept on disk across a receiver restart is resumed for the same version and discarded for another', async () => {
      const dir = await tmpDir('relay-inbox-');
      const bytes = await readFile((await randomFile(await tmpDir(), size)).path);

      await leavePartial(dir, 'p.bin', 5000, bytes);
      expect(await partialEntries(dir)).to.have.length(2); // <key>.part and <key>.json survive

      const r2 = await startReceiver({ dir });
      const link2 = await connectedLink(r2.url);
      const same = await link2.request('offer', { name: 'p.bin', size, mtimeMs: 5000 }, 5000);
      expect(same.offset).to.equal(half);
      link2.close();
      await r2.close();

      const r3 = await startReceiver({ dir });
      const link3 = await connectedLink(r3.url);
      const other = await link3.request('offer', { name: 'p.bin', size, mtimeMs: 6000 }, 5000);
      expect(other.offset).to.equal(0);
      const differentSize = await link3.request('offer', { name: 'p.bin', size: size + 1, mtimeMs: 6000 }, 5000);
      expect(differentSize.offset).to.equal(0);
    });

    it('a resumed transfer is verified over the bytes kept from before (a corrupted partial fails the commit)', async () => {
      const dir = await tmpDir('relay-inbox-');
      const bytes = await readFile((await randomFile(await tmpDir(), size)).path);
      await leavePartial(dir, 'c.bin', 1, bytes);
      // Flip one byte of the partial on disk while no receiver runs.
      const part = (await partialEntries(dir)).find((n) => n.endsWith('.part'))!;
      const fh = await open(path.join(dir, '.relay-partial', part), 'r+');
      await fh.write(Buffer.from([bytes[100]! ^ 0xff]), 0, 1, 100);
      await fh.close();

      const r2 = await startReceiver({ dir });
      const link2 = await connectedLink(r2.url);
      const again = await link2.request('offer', { name: 'c.bin', size, mtimeMs: 1 }, 5000);
      expect(again.offset).to.equal(half);
      await link2.request('chunk', chunkOf(again.lease, half, bytes.subarray(half)), 5000);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const err = await commitFile(link2, { lease: again.lease, sha256 }, 5000).catch((e: unknown) => e);
      expect(err).to.have.property('code', ErrorCode.CHECKSUM);
      expect(await partialEntries(dir)).to.deep.equal([]);
    });
  });

  it('removes partials untouched longer than --partial-ttl when the receiver starts, and keeps fresh ones', async () => {
    const dir = await tmpDir('relay-inbox-');
    const bytes = Buffer.alloc(2000, 1);
    const r1 = await startReceiver({ dir });
    const link1 = await connectedLink(r1.url);
    for (const name of ['old.bin', 'fresh.bin']) {
      const { lease: transfer } = await link1.request('offer', { name, size: bytes.length, mtimeMs: 1 }, 5000);
      await link1.request('chunk', chunkOf(transfer, 0, bytes.subarray(0, 1000)), 5000);
    }
    link1.close();
    await r1.close();
    const pdir = path.join(dir, PARTIAL_DIR);
    const twoDaysAgo = new Date(Date.now() - 48 * 3_600_000);
    for (const ext of ['part', 'json']) await utimes(path.join(pdir, `${partialKey('old.bin')}.${ext}`), twoDaysAgo, twoDaysAgo);
    // A .part without its .json (a crash between the two writes) is an orphan, removed after a minute.
    // (Named as the store names its files: the sweep never removes a name it did not create.)
    const stray = path.join(pdir, `${partialKey('stray.bin')}.part`);
    await writeFile(stray, 'x');
    await utimes(stray, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));

    const r2 = await startReceiver({ dir, partialTtlMs: 24 * 3_600_000 });
    // The receiver listens first and sweeps right after: a restart over many partials is healthy at once.
    await r2.swept();
    const fresh = partialKey('fresh.bin');
    expect((await partialEntries(dir)).sort()).to.deep.equal([`${fresh}.json`, `${fresh}.part`]);
    const link2 = await connectedLink(r2.url);
    expect((await link2.request('offer', { name: 'old.bin', size: bytes.length, mtimeMs: 1 }, 5000)).offset).to.equal(0);
    expect((await link2.request('offer', { name: 'fresh.bin', size: bytes.length, mtimeMs: 1 }, 5000)).offset).to.equal(1000);
  });
});
