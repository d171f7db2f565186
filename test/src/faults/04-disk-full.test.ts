/**
 * Scenario 4: the receiver's folder on a small tmpfs. A file larger than the space is refused DISK_FULL at
 * the offer (no byte written); the disk filled by something else in the middle of a transfer stops that
 * transfer with DISK_FULL; the receiver keeps serving throughout; once the space is freed, the same send
 * succeeds.
 */
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { expectIdentical, expectNoTornFile, expectStillServing, partialBytes, partialEntries } from './support/checks.js';
import { Cleanup, figure, MiB, randomFile, tmpDir, waitUntil } from './support/harness.js';
import { describeSend, freePort, healthz, send, socketPathIn, startAgent, startReceiver, startSend } from './support/processes.js';
import { mountTmpfs, whyNotRoot } from './support/system.js';
import { FinalNameWatcher } from './support/watcher.js';


/** Writes 1 MiB blocks to `file` until the filesystem says ENOSPC; returns the bytes written. */
async function fillDisk(file: string): Promise<number> {
  const fh = await open(file, 'w');
  const block = Buffer.alloc(MiB, 0x5a);
  let written = 0;
  try {
    for (let i = 0; i < 4096; i++) {
      try {
        written += (await fh.write(block)).bytesWritten;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return written;
        throw err;
      }
    }
    throw new Error('the disk never filled');
  } finally {
    await fh.close();
  }
}

describe('faults 4: disk full on a small tmpfs', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it('refuses DISK_FULL at the offer and mid-transfer, keeps serving, and the same send succeeds once space is freed', async function () {
    const why = whyNotRoot();
    if (why) {
      process.stdout.write(`      SKIPPED faults 4: ${why}\n`);
      this.skip();
    }
    const base = await tmpDir(cleanup, 'rlyf-disk-');
    const mnt = await mountTmpfs(cleanup, base, '64m');
    const inbox = path.join(mnt, 'inbox');
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const big = await randomFile(path.join(work, 'too-big.bin'), 96 * MiB);
    const mid = await randomFile(path.join(work, 'mid.bin'), 40 * MiB);
    const port = await freePort();
    const receiver = await startReceiver(cleanup, { dir: inbox, port });
    const socket = socketPathIn(work);
    await startAgent(cleanup, { socket, receivers: { tiny: receiver.url }, allowRoots: [work] });
    const watcher = new FinalNameWatcher(inbox).allow(big.sha256, mid.sha256).start();
    cleanup.add('stop watcher', () => watcher.stop());

    // 1. Larger than the whole disk: refused at the offer, before any byte is written.
    const refused = await send([big.path, '--to', 'tiny', '--timeout', '20s'], { socket, timeoutMs: 60_000 });
    expect(refused.code, describeSend(refused)).to.equal(1);
    expect(refused.failed.map((f) => f.code)).to.deep.equal(['DISK_FULL']);
    expect(await partialBytes(inbox), 'bytes written for a refused offer').to.equal(0);
    expect((await healthz(receiver.url)).status).to.equal('ok');

    // 2. Room at the offer, then something else fills the disk mid-transfer.
    const filler = path.join(mnt, 'filler.bin');
    const job = startSend([mid.path, '--to', 'tiny', '--bwlimit', '12M', '--timeout', '20s'], { socket, timeoutMs: 90_000 });
    await waitUntil('8 MiB of the transfer on disk', async () => (await partialBytes(inbox)) >= 8 * MiB, 30_000, 20);
    const filled = await fillDisk(filler);
    const full = await job.done;
    expect(full.code, describeSend(full)).to.equal(1);
    expect(full.failed.map((f) => f.code)).to.deep.equal(['DISK_FULL']);
    const heldAfterFull = await partialBytes(inbox);
    // The receiver keeps serving: it answers /healthz and still knows the sender agent.
    const h = await healthz(receiver.url);
    expect(h.status).to.equal('ok');
    expect(receiver.alive).to.equal(true);

    // 3. Space freed: the same send succeeds.
    await rm(filler);
    const again = await send([mid.path, '--to', 'tiny', '--timeout', '30s'], { socket, timeoutMs: 90_000 });
    expect(again.code, describeSend(again)).to.equal(0);
    await expectIdentical(path.join(inbox, 'mid.bin'), mid);
    expect(await partialEntries(inbox)).to.deep.equal([]);
    await waitUntil('no active transfer', async () => (await healthz(receiver.url)).activeTransfers === 0, 10_000);
    await expectStillServing({ url: receiver.url, dir: inbox, agent: { socket, name: 'tiny' }, srcDir: work, watcher });
    await expectNoTornFile(watcher);
    await figure('4. disk full', `64 MiB tmpfs: a 96 MiB offer refused DISK_FULL with 0 bytes written; a 40 MiB transfer stopped DISK_FULL when ${(filled / MiB).toFixed(0)} MiB of filler filled the disk ` +
      `(${(heldAfterFull / MiB).toFixed(1)} MiB partial kept); /healthz ok throughout; after freeing the space the same send succeeded ` +
      `(resumed from ${again.received[0]?.resumedFrom ?? 0} bytes), identical`,
    { fillerBytes: filled, heldAfterFull, resumedFrom: again.received[0]?.resumedFrom });
  });
});
