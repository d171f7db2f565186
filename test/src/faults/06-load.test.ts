/**
 * Scenario 6: load. 50 concurrent `relay send`s of mixed sizes through one sender agent to 3 receivers,
 * then a 10,000-file tree. Everything is confirmed and identical; the receivers' RSS and open
 * descriptors stay bounded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { expectIdentical, expectNoTornFile, expectStillServing, partialEntries } from './support/checks.js';
import { Cleanup, figure, isRoot, listFiles, mib, MiB, randInt, randomFile, StatsSampler, tmpDir, type SourceFile } from './support/harness.js';
import { describeSend, freePort, send, socketPathIn, startAgent, startReceiver, startSend, type ReceiverBin } from './support/processes.js';
import { mountTmpfs } from './support/system.js';
import { FinalNameWatcher } from './support/watcher.js';

const SENDS = Number(process.env.FAULTS_SENDS ?? 50);
const TREE_FILES = Number(process.env.FAULTS_TREE ?? 10_000);
const SIZES = [0, 1, 1000, 64 * 1024, MiB + 1, 3 * MiB, 8 * MiB, 16 * MiB, 24 * MiB];
const RSS_BOUND = 400 * MiB;
const FD_BOUND = 400;

describe('faults 6: load through one agent to 3 receivers', function () {
  this.timeout(400_000);
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it(`${SENDS} concurrent sends of mixed sizes and a ${TREE_FILES}-file tree: all confirmed and identical, receivers bounded`, async () => {
    const base = await tmpDir(cleanup, 'rlyf-load-');
    // The receivers write to a tmpfs when we may mount one: this measures the relay, not this VM's disk.
    const disk = isRoot() ? await mountTmpfs(cleanup, base, '3g') : base;
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const receivers: ReceiverBin[] = [];
    for (let i = 1; i <= 3; i++) receivers.push(await startReceiver(cleanup, { dir: path.join(disk, `r${i}`), port: await freePort(), name: `receiver r${i}` }));
    const names = ['r1', 'r2', 'r3'];
    const socket = socketPathIn(work);
    await startAgent(cleanup, { socket, receivers: Object.fromEntries(receivers.map((r, i) => [names[i]!, r.url])), allowRoots: [work], args: ['--concurrency', '8'] });
    const watchers = receivers.map((r) => new FinalNameWatcher(r.spec.dir, () => false, 500).start());
    cleanup.add('stop watchers', () => Promise.all(watchers.map((w) => w.stop())));
    const sampler = new StatsSampler(() => receivers.map((r) => r.pid), 200).start();
    cleanup.add('stop sampler', () => sampler.stop());

    // 1. 50 concurrent sends, each of one file to one, two or three receivers.
    const plan: Array<{ src: SourceFile; to: string[] }> = [];
    const srcs = await Promise.all(Array.from({ length: SENDS }, (_, i) => randomFile(path.join(work, 'mixed', `f${i}.bin`), SIZES[randInt(0, SIZES.length - 1)]! + (i % 7))));
    for (const [i, src] of srcs.entries()) {
      for (const w of watchers) w.allow(src.sha256);
      plan.push({ src, to: randInt(0, 2) === 0 ? ['all'] : names.filter(() => Math.random() < 0.6).slice(0, 2).concat(names[i % 3]!) });
    }
    const t0 = Date.now();
    const results = await Promise.all(plan.map(({ src, to }) =>
      startSend([src.path, '--to', [...new Set(to)].join(','), '--as', `mixed/${path.basename(src.path)}`, '--timeout', '3m'], { socket, timeoutMs: 300_000 }).done));
    const mixedSecs = (Date.now() - t0) / 1000;
    let confirmations = 0;
    let bytes = 0;
    for (const [i, r] of results.entries()) {
      expect(r.code, `send ${i}: ${describeSend(r)}`).to.equal(0);
      const targets = new Set(plan[i]!.to.includes('all') ? names : plan[i]!.to);
      expect(r.received.map((e) => e.target).sort(), `send ${i}`).to.deep.equal([...targets].sort());
      for (const t of targets) {
        await expectIdentical(path.join(receivers[names.indexOf(t)]!.spec.dir, 'mixed', path.basename(plan[i]!.src.path)), plan[i]!.src);
        confirmations++;
        bytes += plan[i]!.src.size;
      }
    }

    // 2. A 10,000-file tree, to all three.
    const phase = (what: string): void => void process.stdout.write(`      [6] ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    phase('mixed sends verified');
    const tree = path.join(work, 'tree');
    const digests = new Map<string, string>();
    const makeOne = async (i: number): Promise<void> => {
      const rel = `d${i % 100}/s${i % 7}/file-${i}.txt`;
      const data = randomBytes(randInt(0, 4096));
      await mkdir(path.join(tree, path.dirname(rel)), { recursive: true });
      await writeFile(path.join(tree, rel), data);
      const h = createHash('sha256').update(data).digest('hex');
      digests.set(rel, h);
      for (const w of watchers) w.allow(h);
    };
    for (let i = 0; i < TREE_FILES; i += 200) await Promise.all(Array.from({ length: Math.min(200, TREE_FILES - i) }, (_, j) => makeOne(i + j)));
    phase('tree made');
    const t1 = Date.now();
    const treeRun = await send([tree, '--to', 'r1', '--as', 'tree', '--timeout', '3m'], { socket, timeoutMs: 360_000 });
    const treeSecs = (Date.now() - t1) / 1000;
    expect(treeRun.code, describeSend(treeRun)).to.equal(0);
    expect(treeRun.received).to.have.length(TREE_FILES);
    phase('tree sent');
    // The tree goes to one receiver: 10,000 offers, chunks and commits through the same agent and link.
    const treeTo = receivers[0]!;
    const got = await listFiles(path.join(treeTo.spec.dir, 'tree'));
    expect(got.length, `${treeTo.spec.dir}/tree`).to.equal(TREE_FILES);
    const verify = async (rel: string): Promise<void> => {
      const h = createHash('sha256').update(await readFile(path.join(treeTo.spec.dir, 'tree', rel))).digest('hex');
      expect(h, `${treeTo.spec.dir}/tree/${rel}`).to.equal(digests.get(rel));
    };
    for (let i = 0; i < got.length; i += 200) await Promise.all(got.slice(i, i + 200).map(verify));
    for (const r of receivers) expect(await partialEntries(r.spec.dir)).to.deep.equal([]);
    phase('tree verified');
    sampler.stop();
    expect(sampler.maxRss, 'receiver RSS').to.be.at.most(RSS_BOUND);
    expect(sampler.maxFds, 'receiver open fds').to.be.at.most(FD_BOUND);
    for (const [i, r] of receivers.entries()) await expectStillServing({ url: r.url, dir: r.spec.dir, agent: { socket, name: names[i]! }, srcDir: work, watcher: watchers[i] });
    phase('still serving');
    for (const w of watchers) await expectNoTornFile(w);
    phase('watchers stopped');
    await figure('6. load', `${SENDS} concurrent sends (${confirmations} confirmations, ${mib(bytes)}) through one agent to 3 receivers in ${mixedSecs.toFixed(1)} s, ` +
      `then a ${TREE_FILES}-file tree (${treeRun.received.length} confirmations) in ${treeSecs.toFixed(1)} s: all identical; receiver max RSS ${mib(sampler.maxRss)} ` +
      `(bound ${mib(RSS_BOUND)}), max fds ${sampler.maxFds} (bound ${FD_BOUND})`,
    { sends: SENDS, confirmations, bytes, mixedSeconds: mixedSecs, treeFiles: TREE_FILES, treeSeconds: treeSecs, maxRss: sampler.maxRss, maxFds: sampler.maxFds });
  });
});
