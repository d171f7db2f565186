/**
 * Scenario 9: releases (issue 19) under faults. `relay send <folder> --release www` through the sender agent
 * puts the files in `<dir>/www/.releases/<id>/`, marks the release complete with `<id>.json` once it is
 * verified and durable, then renames a new `current` (relative target `.releases/<id>`) over the old one.
 *
 *  a. ~500 small files and one 64 MiB file through a TCP proxy that cuts the connection several times during
 *     the send, and once more between the staging and the switch: the step exits 0, `current` is the new
 *     release, every file is byte-identical to its source.
 *  b. the receiver killed with kill -9 five times, at moments spread over a release's send (restarted each
 *     time on the same port and folder; the same `relay send` carries on through the agent): after every
 *     kill `current` names a complete release (its manifest exists and its files match it, never a mix of
 *     two); the step exits 0 and `current` is the new release.
 */
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { expectNoTornFile, expectStillServing, partialBytes, partialEntries } from './support/checks.js';
import { BIN, Cleanup, figure, listFiles, MiB, randInt, randomFile, sh, sha256File, tmpDir, TOKEN, waitUntil } from './support/harness.js';
import { FaultProxy } from '../support/proxy.js';
import { describeSend, freePort, socketPathIn, startAgent, startReceiver, startSend, type ReceiverBin, type SendEvent, type SendHandle, type SendResult } from './support/processes.js';
import { FinalNameWatcher } from './support/watcher.js';

const RELEASE = 'www';
const SMALL_FILES = Number(process.env.FAULTS_RELEASE_FILES ?? 500);
const BIG_MB = Number(process.env.FAULTS_RELEASE_BIG_MB ?? 64);
const CUTS = Number(process.env.FAULTS_RELEASE_CUTS ?? 6);
const KILLS = Number(process.env.FAULTS_RELEASE_KILLS ?? 5);

/** relative name → sha256 */
type Tree = Map<string, string>;

/**
 * A site-like folder: `count` small files (0–16 KiB, a few empty) in nested folders, plus `big.bin`. Names
 * are the same for every version (`seed` only changes the bytes), so a second version replaces every file.
 */
async function makeSite(dir: string, count: number, bigBytes: number): Promise<{ tree: Tree; bytes: number }> {
  const tree: Tree = new Map();
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const rel = i === 0 ? 'index.html' : `assets/d${i % 7}/s${i % 3}/f${String(i).padStart(4, '0')}.txt`;
    const size = i % 50 === 7 ? 0 : randInt(1, 16 * 1024);
    const f = await randomFile(path.join(dir, rel), size);
    tree.set(rel, f.sha256);
    bytes += size;
  }
  const big = await randomFile(path.join(dir, 'media/big.bin'), bigBytes);
  tree.set('media/big.bin', big.sha256);
  bytes += bigBytes;
  return { tree, bytes };
}

async function hashTree(dir: string): Promise<Tree> {
  const out: Tree = new Map();
  for (const rel of await listFiles(dir)) out.set(rel, await sha256File(path.join(dir, rel)));
  return out;
}

function sameTree(got: Tree, want: Tree): string[] {
  const diffs: string[] = [];
  for (const [rel, h] of want) if (got.get(rel) !== h) diffs.push(`${rel}: ${got.has(rel) ? 'differs' : 'missing'}`);
  for (const rel of got.keys()) if (!want.has(rel)) diffs.push(`${rel}: not in the source`);
  return diffs;
}

interface Manifest {
  id: string;
  stagedAt: number;
  files: Array<{ name: string; size: number; mode: number; sha256: string }>;
}

/**
 * What `<dir>/www/current` is right now: null when absent, else the complete release it names. Throws when
 * it is anything else: not a symlink, an absolute or foreign target, a release without its manifest, or a
 * release folder whose files do not match its manifest (missing, extra, other bytes).
 */
async function currentRelease(home: string): Promise<{ id: string; tree: Tree } | null> {
  const link = path.join(home, 'current');
  const st = await lstat(link).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
  if (!st) return null;
  expect(st.isSymbolicLink(), `${link} is a symlink`).to.equal(true);
  const target = await readlink(link);
  const m = /^\.releases\/([^/]+)$/.exec(target);
  expect(m, `${link} → ${target}: the target is relative, .releases/<id>`).to.not.equal(null);
  const id = m![1]!;
  const manifestFile = path.join(home, '.releases', `${id}.json`);
  const text = await readFile(manifestFile, 'utf8').catch(() => undefined);
  expect(text, `current names ${id}, whose manifest ${manifestFile} does not exist (an incomplete release)`).to.not.equal(undefined);
  const manifest = JSON.parse(text!) as Manifest;
  expect(manifest.id).to.equal(id);
  const folder = path.join(home, '.releases', id);
  const tree = await hashTree(folder);
  const want: Tree = new Map(manifest.files.map((f) => [f.name, f.sha256]));
  const diffs = sameTree(tree, want);
  expect(diffs, `release ${id} (current) does not match its manifest`).to.deep.equal([]);
  for (const f of manifest.files) expect((await stat(path.join(folder, f.name))).size, f.name).to.equal(f.size);
  return { id, tree };
}

function releaseEvent(r: SendResult, phase: string): SendEvent | undefined {
  return r.events.find((e) => e.type === 'release' && e.phase === phase);
}

/** `relay releases www --to <name> --json` through the agent. */
async function listReleases(socket: string, to: string): Promise<{ current: string | null; ids: string[] }> {
  const r = await sh(process.execPath, [BIN.relay, 'releases', RELEASE, '--to', to, '--json'],
    { env: { ...process.env, RELAY_TOKEN: TOKEN, RELAY_SOCKET: socket }, timeoutMs: 30_000 });
  expect(r.code, `relay releases: ${r.stderr}`).to.equal(0);
  const j = JSON.parse(r.stdout) as { nodes: Array<{ current: string | null; releases: Array<{ id: string }> }> };
  return { current: j.nodes[0]!.current, ids: j.nodes[0]!.releases.map((x) => x.id) };
}

/** Names a watcher must not hash as files of a release: manifests and their temp files, the switch's temp link. */
const notReleaseFile = (rel: string): boolean => /(^|\/)\.releases\/[^/]+\.json(\.tmp)?$/.test(rel) || /\.tmp$/.test(rel);

describe('faults 9: releases through cuts and kill -9', function () {
  this.timeout(300_000);
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  /** A send started here is killed (by its pid) at cleanup if it is still running. */
  const tracked = (h: SendHandle): SendHandle => {
    cleanup.add(`kill send ${h.child.pid}`, async () => {
      if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill('SIGKILL');
      await h.done;
    });
    return h;
  };

  /** A release through the proxy: `cuts` cuts spread over the file bytes, then (switchCut) one cut between staging and switch. */
  const throughCuts = async (label: string, smallFiles: number, bigBytes: number, cuts: number, switchCut: boolean): Promise<void> => {
    const work = await tmpDir(cleanup, 'rlyf-rel-src-');
    const inbox = await tmpDir(cleanup, 'rlyf-rel-inbox-');
    const site = path.join(work, 'site');
    const { tree, bytes } = await makeSite(site, smallFiles, bigBytes);
    const receiver = await startReceiver(cleanup, { dir: inbox, port: await freePort() });
    const proxy = new FaultProxy(receiver.spec.port);
    await proxy.start();
    cleanup.add('close proxy', () => proxy.close());
    // The cuts spread over the stream of file bytes (client→server), at least 1 MiB from either end.
    const span = bytes - 4 * MiB;
    const positions = Array.from({ length: cuts }, (_, i) => 2 * MiB + Math.floor((span * (i + 0.2 + Math.random() * 0.6)) / cuts));
    proxy.cutAtPositions(positions);
    const socket = socketPathIn(work);
    await startAgent(cleanup, { socket, receivers: { far: proxy.url }, allowRoots: [work] });
    const watcher = new FinalNameWatcher(inbox, notReleaseFile).allow(...tree.values()).start();
    cleanup.add('stop watcher', () => watcher.stop());
    const home = path.join(inbox, RELEASE);

    const started = Date.now();
    const job = tracked(startSend([site, '--to', 'far', '--release', RELEASE, '--timeout', '2m'], { socket, timeoutMs: 240_000 }));
    let finished = false;
    void job.done.finally(() => (finished = true));
    // Once every planned cut happened and the release is staged (its manifest is there), the next bytes the
    // sender writes (its switch, or a heartbeat) are cut: the switch must still happen, once.
    let switchPhase = switchCut ? 'not tried (the send ended first)' : 'not cut';
    const armSwitchCut = async (): Promise<void> => {
      if (!switchCut) return;
      await waitUntil('the planned cuts', () => finished || proxy.cutsPending === 0, 200_000, 20);
      if (finished) return;
      const staged = await Promise.race([
        receiver.waitLog('release staged', (l) => l.msg === 'release staged', 200_000),
        job.done.then(() => undefined),
      ]);
      if (finished || !staged) return;
      const cutsBefore = proxy.cutsDone;
      const before = await readlink(path.join(home, 'current')).catch(() => null);
      proxy.cutAtPositions([proxy.forwarded + 1]);
      await waitUntil('the switch-phase cut or the end', () => finished || proxy.cutsDone > cutsBefore, 200_000, 20);
      switchPhase = proxy.cutsDone > cutsBefore
        ? `cut after ${String(staged.id)} was staged (current was ${before ?? 'absent'} then)`
        : 'armed, but the send ended before the sender wrote again';
    };
    const [r] = await Promise.all([job.done, armSwitchCut()]);
    proxy.cutAtPositions([]);
    const secs = (Date.now() - started) / 1000;

    expect(r.code, `${describeSend(r)}; switch phase: ${switchPhase}; last events: ${r.stdout.slice(-2500)}`).to.equal(0);
    expect(proxy.cutsDone, 'every planned cut happened during the send').to.be.at.least(cuts);
    if (switchCut) expect(switchPhase, 'the cut between staging and switch happened').to.match(/^cut after/);
    const switched = releaseEvent(r, 'switched');
    expect(switched, `a "switched" event: ${r.stdout.slice(-2000)}`).to.not.equal(undefined);
    const id = switched!.id as string;
    const now = await currentRelease(home);
    expect(now?.id, 'current is the release the step switched to').to.equal(id);
    expect(sameTree(now!.tree, tree), 'current holds the source folder, byte for byte').to.deep.equal([]);
    expect(await readlink(path.join(home, 'current'))).to.equal(`.releases/${id}`);
    // Every name the step confirmed is a file of the release, and every file of the folder was confirmed.
    const names = new Set(r.received.map((e) => e.name as string));
    expect([...tree.keys()].filter((n) => !names.has(n)), 'files the step never confirmed').to.deep.equal([]);
    expect(await partialEntries(inbox), '.relay-partial after the release').to.deep.equal([]);
    const listed = await listReleases(socket, 'far');
    expect(listed).to.deep.equal({ current: id, ids: [id] });
    await expectStillServing({ url: proxy.url, dir: inbox, agent: { socket, name: 'far' }, srcDir: work, watcher });
    await expectNoTornFile(watcher);
    await figure(label, `${tree.size} files (${(bytes / MiB).toFixed(1)} MiB) as release ${id} through ${proxy.cutsDone} cuts ` +
      `(${proxy.connections} connections; switch phase: ${switchPhase}): exit 0, current → .releases/${id}, every file identical, ` +
      `${watcher.checked} final-name checks clean, ${secs.toFixed(1)} s`,
    { files: tree.size, bytes, cuts: proxy.cutsDone, connections: proxy.connections, switchPhase, seconds: secs });
  };

  it(`a: ${SMALL_FILES} files + ${BIG_MB} MiB as a release through ${CUTS} connection cuts: exit 0, current is the new release, every file identical`,
    () => throughCuts('9a. release through cuts', SMALL_FILES, BIG_MB * MiB, CUTS, false));

  it('a2: a connection cut between the staging and the switch: the agent reconnects and switches, exit 0',
    () => throughCuts('9a2. cut before the switch', 50, 4 * MiB, 1, true));

  it(`b: the receiver killed -9 ${KILLS} times during a release (restarted on the same port): current is always a complete release, the step exits 0 with the new one`, async () => {
    const work = await tmpDir(cleanup, 'rlyf-rel-src-');
    const inbox = await tmpDir(cleanup, 'rlyf-rel-inbox-');
    const home = path.join(inbox, RELEASE);
    const count = Math.max(50, Math.floor(SMALL_FILES / 2));
    const big = Math.max(8, Math.floor(BIG_MB / 2)) * MiB;
    const v1 = await makeSite(path.join(work, 'site-v1'), count, big);
    const v2 = await makeSite(path.join(work, 'site-v2'), count, big);
    const port = await freePort();
    let receiver: ReceiverBin = await startReceiver(cleanup, { dir: inbox, port });
    const socket = socketPathIn(work);
    await startAgent(cleanup, { socket, receivers: { pi: `http://127.0.0.1:${port}` }, allowRoots: [work] });
    const watcher = new FinalNameWatcher(inbox, notReleaseFile, 100).allow(...v1.tree.values(), ...v2.tree.values()).start();
    cleanup.add('stop watcher', () => watcher.stop());

    // v1, without faults: the release every kill must leave in place until v2 is complete.
    const first = await tracked(startSend([path.join(work, 'site-v1'), '--to', 'pi', '--release', RELEASE, '--timeout', '1m'], { socket, timeoutMs: 120_000 })).done;
    expect(first.code, describeSend(first)).to.equal(0);
    const v1Id = (releaseEvent(first, 'switched')?.id as string | undefined) ?? '';
    const c1 = await currentRelease(home);
    expect(c1?.id).to.equal(v1Id);
    expect(sameTree(c1!.tree, v1.tree)).to.deep.equal([]);

    /** Bytes of v2 on the receiver: the fullest staging folder other than v1's, plus what .relay-partial holds. */
    const progress = async (): Promise<number> => {
      let best = 0;
      for (const name of await readdir(path.join(home, '.releases')).catch(() => [] as string[])) {
        if (name === v1Id || name.includes('.')) continue;
        let n = 0;
        for (const rel of await listFiles(path.join(home, '.releases', name))) n += await stat(path.join(home, '.releases', name, rel)).then((s) => s.size, () => 0);
        best = Math.max(best, n);
      }
      return best + (await partialBytes(inbox));
    };
    const v2Staged = async (): Promise<boolean> =>
      (await readdir(path.join(home, '.releases')).catch(() => [] as string[])).some((n) => n.endsWith('.json') && !n.startsWith('.') && n !== `${v1Id}.json`);

    const started = Date.now();
    const v2Args = [path.join(work, 'site-v2'), '--to', 'pi', '--release', RELEASE, '--bwlimit', '16M', '--timeout', '2m'];
    /** The step running now; `finished` once its `relay send` exited. */
    const run = (): { h: SendHandle; finished: boolean } => {
      const j = { h: tracked(startSend(v2Args, { socket, timeoutMs: 240_000 })), finished: false };
      void j.h.done.finally(() => (j.finished = true));
      return j;
    };
    let job = run();
    let runs = 1;
    const reruns: string[] = [];
    let final: SendResult | undefined;
    /**
     * The step ended: exit 0 is the end; a step that gave up because the node forgot the release being
     * staged (NO_RELEASE: it restarted more often than the sender begins a staging again) is re-run, as a
     * Jenkins retry would, and the re-run must take up what the cut-off staging verified. Anything else fails.
     */
    const settle = async (): Promise<boolean> => {
      const r = await job.h.done;
      if (r.code === 0) return void (final = r), true;
      const why = r.events.find((e) => e.type === 'release' && e.phase === 'failed');
      expect(why?.code, `run ${runs} failed for another reason than a restart of the node: ${describeSend(r)}; ${r.stdout.slice(-2000)}`).to.be.oneOf(['NO_RELEASE', 'DISCONNECTED']);
      expect(runs, 're-runs').to.be.at.most(KILLS + 1);
      reruns.push(`run ${runs}: ${String(why!.message)}`);
      job = run();
      runs++;
      return false;
    };
    // Kill points spread over the send: at fractions of v2's bytes held by the receiver, and the last one
    // at the moment v2 is staged (its manifest written, the switch not yet seen or just done).
    const points: Array<{ at: string; reached: () => Promise<boolean> }> = [];
    for (let k = 0; k < KILLS - 1; k++) {
      const frac = (k + 0.5) / KILLS;
      points.push({ at: `${Math.round(frac * 100)}% of the bytes`, reached: async () => (await progress()) >= frac * v2.bytes || (await v2Staged()) });
    }
    if (KILLS > 0) points.push({ at: 'v2 staged', reached: v2Staged });
    const after: string[] = [];
    let kills = 0;
    points: for (const p of points) {
      for (;;) {
        await waitUntil(`kill point ${p.at}`, async () => job.finished || (await p.reached()), 120_000, 10);
        if (!job.finished) break;
        if (await settle()) break points;
      }
      await receiver.kill9();
      kills++;
      // The receiver is gone: what a reader of current sees now is what a crash at this moment leaves.
      const state = await currentRelease(home);
      const which = state === null ? 'absent' : state.id === v1Id ? 'v1' : 'v2';
      if (which === 'v1') expect(sameTree(state!.tree, v1.tree), `kill ${kills}: current is v1`).to.deep.equal([]);
      if (which === 'v2') expect(sameTree(state!.tree, v2.tree), `kill ${kills}: current is v2`).to.deep.equal([]);
      expect(which, `kill ${kills} (${p.at}): current after v1 was switched to`).to.not.equal('absent');
      after.push(`${p.at}: ${which}`);
      receiver = await startReceiver(cleanup, { dir: inbox, port });
    }
    while (!final) await settle();
    const r = final;
    if (process.env.FAULTS_RELEASE_STRICT === '1') expect(reruns, 'one step carries on through every kill (FAULTS_RELEASE_STRICT=1)').to.deep.equal([]);
    const secs = (Date.now() - started) / 1000;
        expect(kills, `kills before the send ended (${after.join('; ')})`).to.be.at.least(Math.min(KILLS, 3));
    const id = releaseEvent(r, 'switched')?.id as string | undefined;
    expect(id, `a "switched" event: ${r.stdout.slice(-2000)}`).to.be.a('string');
    const now = await currentRelease(home);
    expect(now?.id, 'current is the release the step switched to').to.equal(id);
    expect(sameTree(now!.tree, v2.tree), 'current holds v2, byte for byte').to.deep.equal([]);
    // A re-run is a new release id: what the cut-off run held as a partial (not a whole file) stays until
    // --partial-ttl; with one step carrying on, nothing may be left.
    const leftover = await partialEntries(inbox);
    if (reruns.length === 0) expect(leftover, '.relay-partial after the release').to.deep.equal([]);
    const listed = await listReleases(socket, 'pi');
    expect(listed.current).to.equal(id);
    expect(listed.ids).to.include.members([v1Id, id!]);
    await expectStillServing({ url: receiver.url, dir: inbox, agent: { socket, name: 'pi' }, srcDir: work, watcher });
    await expectNoTornFile(watcher);
    await figure('9b. release through kill -9', `${kills}/${KILLS} receiver kills during release ${id} (${v2.tree.size} files, ` +
      `${(v2.bytes / MiB).toFixed(1)} MiB, over ${v1Id}); current after each kill: ${after.join('; ')} (always a complete release); ` +
      `${runs} run(s) of the step (${reruns.length ? `re-runs after: ${reruns.join(' | ')}` : 'one step carried on'}), the last exit 0, current → .releases/${id}, identical, ${watcher.checked} final-name checks clean, ${secs.toFixed(1)} s`,
    { kills, after, runs, reruns, files: v2.tree.size, bytes: v2.bytes, seconds: secs });
  });
});
