/**
 * Scenario 7: a slow disk. The receiver's folder is an ext4 loop device and the receiver runs in a cgroup
 * whose writes to that device are throttled (cgroup v2 io.max, else v1 blkio). The transfer completes
 * identical while the sender waits for the disk, and neither side's memory grows with the file.
 */
import path from 'node:path';
import { expect } from 'chai';
import { expectIdentical, expectNoTornFile, expectStillServing } from './support/checks.js';
import { Cleanup, figure, mib, MiB, procStats, randomFile, sh, StatsSampler, tmpDir } from './support/harness.js';
import { describeSend, freePort, send, socketPathIn, startAgent, startReceiver } from './support/processes.js';
import { mountLoopExt4, whyNotRoot, writeLimitCgroup } from './support/system.js';
import { FinalNameWatcher } from './support/watcher.js';

const LIMIT = 24 * MiB;
const FILE = 192 * MiB;
/**
 * Growth above the starting RSS: a window of chunks plus garbage not yet collected (about 64 MiB was seen
 * on either side), and at most half the file, so a side that held the file while waiting fails.
 */
const RSS_GROWTH_BOUND = FILE / 2;

describe('faults 7: a slow disk (loop device throttled by a cgroup write limit)', function () {
  this.timeout(180_000);
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it('completes identical with bounded memory while the sender waits for the disk', async function () {
    const skip = (why: string): never => {
      process.stdout.write(`      SKIPPED faults 7: ${why}\n`);
      this.skip();
    };
    const why = whyNotRoot();
    if (why) skip(why);
    const base = await tmpDir(cleanup, 'rlyf-slow-');
    let disk;
    let limit;
    try {
      disk = await mountLoopExt4(cleanup, base, 512);
      limit = await writeLimitCgroup(cleanup, disk.majMin, LIMIT);
    } catch (err) {
      return skip(`no loop device or cgroup write limit here: ${(err as Error).message}`);
    }
    // Probe: does the limit really hold for this device? (8 MiB written with O_DIRECT from inside the cgroup.)
    const t0 = Date.now();
    const probe = await sh('sh', ['-c', `echo $$ > ${limit.procs} && exec dd if=/dev/zero of=${disk.mnt}/probe bs=1M count=8 oflag=direct`], { timeoutMs: 60_000 });
    const probeRate = (8 * MiB) / ((Date.now() - t0) / 1000);
    const accounted = await limit.writtenBytes();
    if (probe.code !== 0 || accounted < 8 * MiB || probeRate > 4 * LIMIT) {
      return skip(`the write limit does not hold here (${limit.mechanism}: dd exit ${probe.code}, ${mib(probeRate)}/s, ${accounted} bytes accounted)`);
    }
    await sh('rm', ['-f', `${disk.mnt}/probe`]);

    const inbox = path.join(disk.mnt, 'inbox');
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const src = await randomFile(path.join(work, 'slow.bin'), FILE);
    const r = await startReceiver(cleanup, { dir: inbox, port: await freePort(), cgroupProcs: limit.procs });
    const socket = socketPathIn(work);
    const agent = await startAgent(cleanup, { socket, receivers: { slow: r.url }, allowRoots: [work] });
    const watcher = new FinalNameWatcher(inbox).allow(src.sha256).start();
    cleanup.add('stop watcher', () => watcher.stop());
    const startR = await procStats(r.pid);
    const startA = await procStats(agent.pid);
    const rs = new StatsSampler(() => [r.pid], 100).start();
    const as = new StatsSampler(() => [agent.pid], 100).start();
    cleanup.add('stop samplers', () => (rs.stop(), as.stop()));
    const before = await limit.writtenBytes();
    const t1 = Date.now();
    const res = await send([src.path, '--to', 'slow', '--timeout', '2m'], { socket, timeoutMs: 170_000 });
    const secs = (Date.now() - t1) / 1000;
    rs.stop();
    as.stop();
    expect(res.code, describeSend(res)).to.equal(0);
    await expectIdentical(path.join(inbox, 'slow.bin'), src);
    const throttled = (await limit.writtenBytes()) - before;
    expect(throttled, 'bytes the receiver wrote through the throttled device').to.be.at.least(FILE);
    expect(rs.maxRss - startR.rssBytes, `receiver RSS ${mib(startR.rssBytes)} -> max ${mib(rs.maxRss)}`).to.be.at.most(RSS_GROWTH_BOUND);
    expect(as.maxRss - startA.rssBytes, `agent RSS ${mib(startA.rssBytes)} -> max ${mib(as.maxRss)}`).to.be.at.most(RSS_GROWTH_BOUND);
    await expectStillServing({ url: r.url, dir: inbox, agent: { socket, name: 'slow' }, srcDir: work, watcher });
    await expectNoTornFile(watcher);
    await figure('7. slow disk', `${mib(FILE)} to an ext4 loop device limited to ${mib(LIMIT)}/s (${limit.mechanism}; probe ${mib(probeRate)}/s): ` +
      `confirmed identical in ${secs.toFixed(1)} s with ${mib(throttled)} written through the limit; receiver RSS ${mib(startR.rssBytes)} -> max ${mib(rs.maxRss)}, ` +
      `agent RSS ${mib(startA.rssBytes)} -> max ${mib(as.maxRss)}`,
    { seconds: secs, limit: LIMIT, throttledBytes: throttled, receiverRssStart: startR.rssBytes, receiverRssMax: rs.maxRss, agentRssStart: startA.rssBytes, agentRssMax: as.maxRss });
  });
});
