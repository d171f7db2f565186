/**
 * Scenario 8: stale partials. With a short --partial-ttl the running receiver's sweep removes a partial
 * nobody touches while a transfer that keeps writing is left alone and completes. At a restart, expired
 * partials are removed and live ones kept (and resumed); a restart over 50,000 partials is healthy in
 * seconds.
 */
import path from 'node:path';
import { expect } from 'chai';
import { expectIdentical, expectNoTornFile, expectStillServing, partialEntries } from './support/checks.js';
import { Cleanup, figure, MiB, randomFile, tmpDir, waitUntil, type SourceFile } from './support/harness.js';
import { describeSend, freePort, healthz, send, startReceiver, startSend, type ReceiverBin } from './support/processes.js';
import { agePartials, clonePartials, partialFiles, partialKeys } from './support/partials.js';
import { FinalNameWatcher } from './support/watcher.js';

const MANY = Number(process.env.FAULTS_PARTIALS ?? 50_000);
const HOUR = 3_600_000;
/** "Healthy in seconds": a restarted receiver must answer /healthz within this long, whatever it holds. */
const READY_BOUND_S = 10;

/** Leaves a partial of `src` on the receiver: a direct send killed once some bytes are on disk. */
async function leavePartial(r: ReceiverBin, src: SourceFile, as: string): Promise<Set<string>> {
  const before = await partialFiles(r.spec.dir);
  const job = startSend([src.path, '--direct', '--to', r.url, '--as', as, '--bwlimit', '4M'], { timeoutMs: 60_000 });
  await waitUntil(`1 MiB of a partial of ${as} written`, async () => {
    const { stat } = await import('node:fs/promises');
    const fresh = [...(await partialFiles(r.spec.dir))].filter((f) => !before.has(f));
    const sizes = await Promise.all(fresh.map((f) => stat(path.join(r.spec.dir, '.relay-partial', f)).then((s) => s.size, () => 0)));
    return Math.max(0, ...sizes) >= MiB;
  }, 20_000, 20);
  job.child.kill('SIGKILL');
  await job.done;
  // Every file of that partial (its bookkeeping may land a moment after the bytes).
  return new Set([...(await partialFiles(r.spec.dir))].filter((f) => !before.has(f)));
}

describe('faults 8: stale partials', function () {
  this.timeout(240_000);
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it('the sweep removes an untouched partial and leaves a transfer in progress alone', async () => {
    const inbox = await tmpDir(cleanup, 'rlyf-inbox-');
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const idle = await randomFile(path.join(work, 'idle.bin'), 32 * MiB);
    const slow = await randomFile(path.join(work, 'slow.bin'), 24 * MiB);
    const r = await startReceiver(cleanup, { dir: inbox, port: await freePort(), args: ['--partial-ttl', '3s'] });
    const watcher = new FinalNameWatcher(inbox).allow(idle.sha256, slow.sha256).start();
    cleanup.add('stop watcher', () => watcher.stop());
    const idleFiles = await leavePartial(r, idle, 'idle.bin');
    expect(idleFiles.size).to.be.greaterThan(0);
    // A transfer that keeps writing for longer than the TTL (24 MiB at 3 MiB/s: about 8 s).
    const job = startSend([slow.path, '--direct', '--to', r.url, '--as', 'slow.bin', '--bwlimit', '3M'], { timeoutMs: 90_000 });
    await waitUntil('the idle partial to expire', async () => {
      const now = await partialFiles(inbox);
      return [...idleFiles].every((f) => !now.has(f));
    }, 30_000, 100);
    const done = await job.done;
    expect(done.code, describeSend(done)).to.equal(0);
    await expectIdentical(path.join(inbox, 'slow.bin'), slow);
    // The expired partial is gone for good: sending that file again starts at 0.
    const again = await send([idle.path, '--direct', '--to', r.url, '--as', 'idle.bin'], { timeoutMs: 60_000 });
    expect(again.code, describeSend(again)).to.equal(0);
    expect(again.received[0]?.resumedFrom).to.equal(0);
    await expectIdentical(path.join(inbox, 'idle.bin'), idle);
    await expectNoTornFile(watcher);
    await figure('8a. partial sweep', `--partial-ttl 3s: an untouched partial removed by the running sweep while a ${(slow.size / MiB).toFixed(0)} MiB transfer writing for ${(Number(done.received[0]?.elapsedMs ?? 0) / 1000).toFixed(1)} s was left alone and completed identical`);
  });

  it(`expired partials are removed at a restart, live ones resume, and ${MANY} partials start healthy in seconds`, async () => {
    const inbox = await tmpDir(cleanup, 'rlyf-inbox-');
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const port = await freePort();
    const srcs = await Promise.all(['old-1', 'old-2', 'live-1', 'live-2'].map((n) => randomFile(path.join(work, `${n}.bin`), 16 * MiB)));
    let r = await startReceiver(cleanup, { dir: inbox, port, args: ['--partial-ttl', '1h'] });
    const watcher = new FinalNameWatcher(inbox).allow(...srcs.map((s) => s.sha256)).start();
    cleanup.add('stop watcher', () => watcher.stop());
    const kept: Array<Set<string>> = [];
    for (const s of srcs) kept.push(await leavePartial(r, s, path.basename(s.path)));
    await r.stop();
    const old = [...kept[0]!, ...kept[1]!];
    await agePartials(inbox, old, 2 * HOUR);
    // 50,000 more: half expired two hours ago, half touched a minute ago.
    const template = [...kept[2]!];
    const t0 = Date.now();
    const expiredClones = await clonePartials(inbox, template, MANY / 2, 2 * HOUR);
    const liveClones = await clonePartials(inbox, template, MANY / 2, 60_000);
    const made = (Date.now() - t0) / 1000;
    const filesBefore = (await partialFiles(inbox)).size;

    const t1 = Date.now();
    r = await startReceiver(cleanup, { dir: inbox, port, args: ['--partial-ttl', '1h'] }, 60_000);
    const h = await waitUntil('/healthz ok after the restart', async () => (await healthz(r.url)).status === 'ok', 30_000, 50);
    const readySec = (Date.now() - t1) / 1000;
    expect(h).to.equal(true);
    // The receiver listens first and sweeps right after: wait (bounded) for that sweep to reach every key.
    const expiredFiles = [...old, ...expiredClones];
    const t2 = Date.now();
    await waitUntil('the startup sweep to remove every expired partial', async () => {
      const now = await partialFiles(inbox);
      return expiredFiles.every((f) => !now.has(f));
    }, 180_000, 250);
    const sweepSec = (Date.now() - t2) / 1000 + readySec;
    const after = await partialFiles(inbox);
    const removedExpired = [...old, ...expiredClones].filter((f) => !after.has(f)).length;
    expect([...old, ...expiredClones].filter((f) => after.has(f)), 'expired partials still present').to.deep.equal([]);
    expect([...kept[2]!, ...kept[3]!, ...liveClones].filter((f) => !after.has(f)), 'live partials removed').to.deep.equal([]);
    expect(partialKeys(after).size).to.equal(MANY / 2 + 2);

    // The live ones resume; the expired ones start over.
    for (const [i, s] of srcs.entries()) {
      const res = await send([s.path, '--direct', '--to', r.url, '--as', path.basename(s.path)], { timeoutMs: 60_000 });
      expect(res.code, describeSend(res)).to.equal(0);
      await expectIdentical(path.join(inbox, path.basename(s.path)), s);
      if (i < 2) expect(res.received[0]?.resumedFrom, `${s.path} (expired)`).to.equal(0);
      else expect(res.received[0]?.resumedFrom, `${s.path} (live)`).to.be.greaterThan(0);
    }
    expect((await partialEntries(inbox)).length).to.equal((MANY / 2) * template.length); // only the live clones are left
    await expectStillServing({ url: r.url, dir: inbox, srcDir: work, watcher });
    await expectNoTornFile(watcher);
    await figure('8b. restart with partials', `restart over ${MANY + 4} partials (${filesBefore} files, made in ${made.toFixed(1)} s): healthy ${readySec.toFixed(1)} s after spawn (bound ${READY_BOUND_S} s), swept ${sweepSec.toFixed(1)} s after spawn, ` +
      `${removedExpired} expired partial files removed, all ${MANY / 2 + 2} live partials kept, the 2 real live ones resumed and the 2 expired ones started over`,
    { partials: MANY + 4, files: filesBefore, readySeconds: readySec, sweptSeconds: sweepSec, removedExpiredFiles: removedExpired });
    // Last, so the figures above are printed even when this fails.
    expect(readySec, `seconds from spawn to a healthy receiver over ${MANY + 4} partials`).to.be.at.most(READY_BOUND_S);
  });
});
