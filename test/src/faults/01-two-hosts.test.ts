/**
 * Scenario 1: two hosts. The receiver and the sender agent run in two network namespaces joined by a veth
 * pair, the link rate-limited with tc tbf. During one 1 GiB transfer the link goes down and up several
 * times and the receiver's address is pulled away (long enough for both sides to give the connection up)
 * and put back. The transfer completes identical, re-sending at most one window per cut.
 */
import path from 'node:path';
import { expect } from 'chai';
import { expectIdentical, expectNoTornFile, expectStillServing, partialBytes, partialEntries } from './support/checks.js';
import { Cleanup, delay, figure, mib, MiB, oneGiBSource, randInt, StatsSampler, tmpDir, waitUntil } from './support/harness.js';
import { describeSend, healthz, socketPathIn, startAgent, startReceiver, startSend } from './support/processes.js';
import { linkUp, receiverAddress, receiverRx, shapeLink, twoHosts, whyNotRoot, type TwoHosts } from './support/system.js';
import { FinalNameWatcher } from './support/watcher.js';

const RATE = process.env.FAULTS_LINK_RATE ?? '1gbit';
const LINK_CUTS = 4;
/** Longer than Socket.IO's ping interval + timeout (10 s + 10 s): both ends drop the connection. */
const ADDRESS_GONE_MS = 24_000;
const WINDOW = 8;
const CHUNK = MiB;


describe('faults 1: two hosts in network namespaces, a shaped veth link cut during a 1 GiB transfer', function () {
  this.timeout(300_000);
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it('completes identical, re-sending at most one window per cut', async function () {
    const why = whyNotRoot();
    let h: TwoHosts | undefined;
    let failure = why;
    if (!why) {
      try {
        h = await twoHosts(cleanup);
        await shapeLink(h, RATE);
      } catch (err) {
        failure = `network namespaces cannot be made here: ${(err as Error).message}`;
      }
    }
    if (failure || !h) {
      process.stdout.write(`      SKIPPED faults 1: ${failure}\n`);
      return this.skip();
    }
    const src = await oneGiBSource();
    const inbox = await tmpDir(cleanup, 'rlyf-inbox-');
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const port = 7420;
    const url = `http://${h.receiverAddr}:${port}`;
    const receiver = await startReceiver(cleanup, { dir: inbox, host: '0.0.0.0', port, netns: h.receiverNs });
    const socket = socketPathIn(work);
    const agent = await startAgent(cleanup, { socket, receivers: { far: url }, allowRoots: [path.dirname(src.path), work], netns: h.senderNs });
    await agent.waitLog('receiver connected', (l) => l.msg === 'receiver connected', 20_000);
    const watcher = new FinalNameWatcher(inbox).allow(src.sha256).start();
    cleanup.add('stop watcher', () => watcher.stop());
    const sampler = new StatsSampler(() => [receiver.pid]).start();
    cleanup.add('stop sampler', () => sampler.stop());
    const rx0 = await receiverRx(h);

    const t0 = Date.now();
    // The `relay` CLI runs outside both namespaces: the agent's control socket is a file.
    const job = startSend([src.path, '--to', 'far', '--as', 'one-gib.bin', '--window', String(WINDOW), '--timeout', '3m'], { socket, timeoutMs: 280_000 });
    let finished = false;
    void job.done.finally(() => (finished = true));
    const cuts: string[] = [];
    // Cuts at spread-out points of the transfer (by bytes the receiver holds), bounded in time.
    const marks = [0.12, 0.3, 0.48, 0.66, 0.8];
    for (const [i, mark] of marks.entries()) {
      const reached = await waitUntil(`${Math.round(mark * 100)}% on the receiver`, async () => finished || (await partialBytes(inbox)) >= mark * src.size, 120_000, 50);
      if (finished || !reached) break;
      if (i === 2) {
        await receiverAddress(h, false);
        await delay(ADDRESS_GONE_MS);
        await receiverAddress(h, true);
        cuts.push(`address gone ${ADDRESS_GONE_MS / 1000} s`);
      } else {
        const ms = randInt(1000, 4000);
        await linkUp(h, false);
        await delay(ms);
        await linkUp(h, true);
        cuts.push(`link down ${(ms / 1000).toFixed(1)} s`);
      }
      if (cuts.length >= LINK_CUTS + 1) break;
    }
    const r = await job.done;
    const secs = (Date.now() - t0) / 1000;
    sampler.stop();
    expect(cuts.length, `cuts made before the transfer ended: ${cuts.join(', ')}`).to.equal(LINK_CUTS + 1);
    expect(r.code, describeSend(r)).to.equal(0);
    await expectIdentical(path.join(inbox, 'one-gib.bin'), src);
    expect(await partialEntries(inbox)).to.deep.equal([]);
    const resent = (r.received[0]!.bytesSent as number) - src.size;
    expect(resent, `re-sent ${resent} bytes over ${cuts.length} cuts`).to.be.at.most(cuts.length * WINDOW * CHUNK);
    const rx1 = await receiverRx(h);
    const reconnects = agent.logs.filter((l) => l.msg === 'receiver reconnected').length;
    const h2 = await healthz(url, h.receiverNs);
    expect(h2.status).to.equal('ok');
    // The health send runs through the agent (in the sender's namespace), like the big one.
    await expectStillServing({ url, dir: inbox, netns: h.receiverNs, agent: { socket, name: 'far' }, srcDir: work, watcher });
    await expectNoTornFile(watcher);
    await figure('1. two hosts', `${mib(src.size)} from one network namespace to another over a veth pair shaped to ${RATE} (tbf), ${cuts.length} cuts (${cuts.join(', ')}): ` +
      `completed identical in ${secs.toFixed(1)} s, ${mib(resent)} re-sent (bound ${cuts.length * WINDOW} MiB), ${reconnects} reconnection(s), ` +
      `${mib(rx1.bytes - rx0.bytes)} taken off the wire by the receiver's end, receiver max RSS ${mib(sampler.maxRss)}`,
    { cuts, seconds: secs, resentBytes: resent, reconnects, wireBytes: rx1.bytes - rx0.bytes, maxRss: sampler.maxRss });
  });
});
