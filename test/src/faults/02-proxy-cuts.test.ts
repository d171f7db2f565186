/**
 * Scenario 2: one 1 GiB transfer through a TCP proxy that cuts the connection at 50 random points of the
 * stream, stalls it and throttles it in between. The send completes, the file is identical, at most one
 * window is re-sent per cut, and nothing torn ever shows under the final name.
 */
import path from 'node:path';
import { expect } from 'chai';
import { FaultProxy } from '../support/proxy.js';
import { expectIdentical, expectNoTornFile, expectStillServing, partialEntries } from './support/checks.js';
import { Cleanup, delay, figure, mib, MiB, oneGiBSource, randInt, StatsSampler, tmpDir } from './support/harness.js';
import { describeSend, freePort, socketPathIn, startAgent, startReceiver, startSend } from './support/processes.js';
import { FinalNameWatcher } from './support/watcher.js';

const CUTS = Number(process.env.FAULTS_CUTS ?? 50);
const WINDOW = 8;
const CHUNK = MiB;

describe('faults 2: 50 random cuts, stalls and throttling through a TCP proxy in one 1 GiB transfer', function () {
  this.timeout(240_000);
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it('completes identical, re-sending at most one window per cut', async () => {
    const src = await oneGiBSource();
    const inbox = await tmpDir(cleanup, 'rlyf-inbox-');
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const receiver = await startReceiver(cleanup, { dir: inbox, port: await freePort() });
    const proxy = new FaultProxy(receiver.spec.port);
    await proxy.start();
    cleanup.add('close proxy', () => proxy.close());
    // Spread the cuts over the first GiB of the stream, at least 4 MiB apart, so each connection moves on.
    const positions: number[] = [];
    const span = src.size - 8 * MiB;
    for (let i = 0; i < CUTS; i++) positions.push(4 * MiB + Math.floor((span * (i + Math.random() * 0.5)) / CUTS));
    proxy.cutAtPositions(positions);
    const socket = socketPathIn(work);
    const agent = await startAgent(cleanup, { socket, receivers: { far: proxy.url }, allowRoots: [path.dirname(src.path), work] });
    const watcher = new FinalNameWatcher(inbox).allow(src.sha256).start();
    cleanup.add('stop watcher', () => watcher.stop());
    const sampler = new StatsSampler(() => [receiver.pid]).start();
    cleanup.add('stop sampler', () => sampler.stop());

    const started = Date.now();
    const job = startSend([src.path, '--to', 'far', '--as', 'big/one-gib.bin', '--window', String(WINDOW), '--timeout', '2m'], { socket, timeoutMs: 200_000 });
    let finished = false;
    void job.done.finally(() => (finished = true));
    // Stalls and throttled stretches between the cuts, bounded in number.
    for (let i = 0; i < 12 && !finished; i++) {
      await delay(randInt(300, 1500));
      if (finished) break;
      if (i % 3 === 2) await proxy.throttle(randInt(8, 32) * MiB, randInt(500, 2000));
      else await proxy.stall(randInt(200, 2500));
    }
    const r = await job.done;
    const elapsed = (Date.now() - started) / 1000;
    sampler.stop();
    expect(r.code, describeSend(r)).to.equal(0);
    expect(r.received).to.have.length(1);
    await expectIdentical(path.join(inbox, 'big/one-gib.bin'), src);
    expect(await partialEntries(inbox)).to.deep.equal([]);
    expect(proxy.cutsDone, 'every planned cut happened during the transfer').to.equal(CUTS);
    const bytesSent = r.received[0]!.bytesSent as number;
    const resent = bytesSent - src.size;
    expect(resent, `re-sent ${resent} bytes over ${proxy.cutsDone} cuts`).to.be.at.most(proxy.cutsDone * WINDOW * CHUNK);
    await expectStillServing({ url: proxy.url, dir: inbox, agent: { socket, name: 'far' }, srcDir: work, watcher });
    await expectNoTornFile(watcher);
    expect(agent.alive && receiver.alive).to.equal(true);
    await figure('2. proxy cuts', `${proxy.cutsDone}/${CUTS} cuts survived (plus ${proxy.stalls} stalls, ${proxy.throttles} throttled stretches) in one ${mib(src.size)} transfer: ` +
      `${proxy.connections} connections, ${mib(resent)} re-sent (${(resent / Math.max(1, proxy.cutsDone) / MiB).toFixed(2)} MiB per cut, bound ${WINDOW} MiB), ` +
      `file identical, ${watcher.checked} final-name checks clean, receiver max RSS ${mib(sampler.maxRss)}, ${elapsed.toFixed(1)} s`,
    { cuts: proxy.cutsDone, stalls: proxy.stalls, throttles: proxy.throttles, connections: proxy.connections, resentBytes: resent, seconds: elapsed, maxRss: sampler.maxRss });
  });
});
