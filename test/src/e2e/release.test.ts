/**
 * Releases end to end (issue 19): `relay send <folder> --release NAME`, `relay releases`, `relay rollback`,
 * with the real relay-receiver processes, the real `relay` bin (--direct, and through a real relay-sender
 * agent) and real files in temp folders.
 */
import { lstat, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { startAgent } from '../support/agent.js';
import { FaultProxy } from '../support/proxy.js';
import { count, scrape } from '../support/metrics.js';
import {
  closeAll, partialEntries, startReceiverProcess, tmpDir, TOKEN, track, type ReceiverProcess,
} from '../support/util.js';
import {
  currentId, currentTarget, ID, jsonLines, labelled, readManifest, receivedEvents, relay, releaseEvents, releaseIds,
  releaseProblems, StreamedRelay, stepId, treeDigests, treeNames, writeTree, type ReleasesJson,
} from '../support/release-util.js';

/** `relay send <src> --direct --to <urls> --release <name> [extra]`. */
function sendArgs(src: string, urls: string[], release: string, extra: string[] = []): string[] {
  return ['send', src, '--direct', ...urls.flatMap((u) => ['--to', u]), '--release', release, ...extra];
}

/** A source folder named "site" in a fresh temp folder (its files are named relative to it in a release). */
async function siteDir(): Promise<string> {
  return path.join(await tmpDir('relay-src-'), 'site');
}

/** Restarts a killed receiver on the same port and folder. */
async function restart(rx: ReceiverProcess, dir: string, args: string[] = []): Promise<ReceiverProcess> {
  return startReceiverProcess({ dir, port: rx.port, args });
}

async function kill9(rx: ReceiverProcess): Promise<void> {
  process.kill(rx.pid, 'SIGKILL');
  const { signal } = await rx.exited;
  expect(signal).to.equal('SIGKILL');
}

/** The labels of every file below `current/` (labelled() contents: "<label> <name>\n…"); throws on a file that is not its own. */
async function labelsOf(home: string, names: string[]): Promise<Set<string>> {
  const labels = new Set<string>();
  for (let i = 0; i < names.length; i += 64) {
    await Promise.all(names.slice(i, i + 64).map(async (n) => {
      const text = await readFile(path.join(home, 'current', ...n.split('/')), 'utf8');
      const [first] = text.split('\n');
      const m = /^(\S+) (.+)$/.exec(first ?? '');
      if (!m || m[2] !== n) throw new Error(`current/${n} holds ${JSON.stringify(text.slice(0, 60))}`);
      labels.add(m[1]!);
    }));
  }
  return labels;
}

describe('releases: relay send --release, relay releases, relay rollback (real processes)', function () {
  this.timeout(120_000);
  this.slow(20_000);
  afterEach(closeAll);

  it('a 2,000-file release switches atomically: readers of current/ never see a mix of v1 and v2 nor a missing file', async () => {
    const dir = await tmpDir('relay-inbox-');
    const rx = await startReceiverProcess({ dir });
    const home = path.join(dir, 'www');
    const src = await siteDir();
    const names = treeNames(2000);
    await writeTree(src, names, 'v1');
    const tokenFile = path.join(await tmpDir(), 'token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    const noEnvToken = { env: { RELAY_TOKEN: undefined } };

    const first = await relay(sendArgs(src, [rx.url], 'www', ['--token-file', tokenFile, '--quiet']), noEnvToken);
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    const v1 = await currentId(home);
    expect(v1).to.match(ID);
    expect(await currentTarget(home)).to.equal(`.releases/${v1}`);
    expect([...(await labelsOf(home, names))]).to.deep.equal(['v1']);
    // build/site/d00/f0000.txt is www/current/d00/f0000.txt: named relative to the folder sent.
    expect(await readFile(path.join(home, 'current', 'd00', 'f0000.txt'), 'utf8')).to.equal(labelled('v1', 'd00/f0000.txt'));

    await writeTree(src, names, 'v2');
    const labelOf = (target: string | null): string => (target === `.releases/${v1}` ? 'v1' : 'v2');
    const violations: string[] = [];
    let stepRunning = true;
    let roundsDuring = 0;
    let straddled = 0;
    const seen = { v1: 0, v2: 0 };
    const reader = async (r: number): Promise<void> => {
      let after = 0;
      // Bounded: a few rounds after the step ended, and never more than 100,000 rounds.
      for (let round = 0; round < 100_000 && after < 5; round++) {
        const during = stepRunning;
        const before = await currentTarget(home);
        const sample = Array.from({ length: 50 }, () => names[Math.floor(Math.random() * names.length)]!);
        const got = await Promise.all(sample.map(async (n) => {
          try {
            const text = await readFile(path.join(home, 'current', ...n.split('/')), 'utf8');
            if (text === labelled('v1', n)) return 'v1';
            if (text === labelled('v2', n)) return 'v2';
            return `WRONG ${n}: ${JSON.stringify(text.slice(0, 40))}`;
          } catch (err) {
            return `${(err as NodeJS.ErrnoException).code ?? String(err)} ${n}`;
          }
        }));
        const afterTarget = await currentTarget(home);
        const labels = new Set(got);
        const bad = got.filter((l) => l !== 'v1' && l !== 'v2');
        if (bad.length) violations.push(`reader ${r} round ${round}: ${bad.slice(0, 3).join('; ')}`);
        if (before === null || afterTarget === null) violations.push(`reader ${r} round ${round}: current missing (${before} → ${afterTarget})`);
        if (before === afterTarget) {
          // current did not change during the round: every file is of the release it names.
          if (labels.size !== 1 || !labels.has(labelOf(before))) violations.push(`reader ${r} round ${round}: current → ${before} but read ${[...labels].join('+')}`);
          seen[labelOf(before) as 'v1' | 'v2']++;
        } else {
          straddled++;
          if (labelOf(before) !== 'v1' || labelOf(afterTarget) !== 'v2') violations.push(`reader ${r} round ${round}: current went ${before} → ${afterTarget}`);
        }
        if (during) roundsDuring++;
        if (!stepRunning) after++;
      }
    };
    const step = new StreamedRelay(sendArgs(src, [rx.url], 'www', ['--json']));
    const readers = Promise.all([0, 1, 2].map(reader));
    const res = await step.result.finally(() => (stepRunning = false));
    await readers;

    expect(res.code, res.stdout.slice(-3000) + res.stderr).to.equal(0);
    if (process.env.RELEASE_TEST_TRACE) console.log({ roundsDuring, straddled, seen });
    expect(violations, violations.slice(0, 10).join('\n')).to.deep.equal([]);
    expect(roundsDuring, 'reader rounds while the second release was sent').to.be.at.least(6);
    expect(seen.v1 + straddled, 'rounds that saw v1 during the step').to.be.greaterThan(0);
    expect(seen.v2, 'rounds that saw v2').to.be.greaterThan(0);
    const v2 = stepId(step.events);
    expect(v2).to.not.equal(v1);
    expect(v2 > v1!, 'ids sort by time').to.equal(true);
    expect(await currentTarget(home)).to.equal(`.releases/${v2}`);
    expect([...(await labelsOf(home, names))]).to.deep.equal(['v2']);
    const ids = await releaseIds(home);
    expect(ids.folders).to.deep.equal([v1, v2]);
    expect(ids.manifests).to.deep.equal([v1, v2]);
    expect(await releaseProblems(home, v2)).to.deep.equal([]);
    expect(await partialEntries(dir)).to.deep.equal([]);
  });

  it('a re-release with 1% of the files changed sends only those: the others are hard links of the previous release', async () => {
    const dir = await tmpDir('relay-inbox-');
    const rx = await startReceiverProcess({ dir });
    const home = path.join(dir, 'www');
    const src = await siteDir();
    const names = treeNames(1000);
    const pad = (n: string): number => 2000 + (n.length % 7);
    await writeTree(src, names, 'v1', pad);
    const first = await relay(sendArgs(src, [rx.url], 'www', ['--quiet']));
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    const v1 = (await currentId(home))!;

    const changed = names.filter((_, i) => i % 100 === 37); // 10 of 1000
    await writeTree(src, changed, 'v2', pad);
    const changedBytes = changed.reduce((n, c) => n + Buffer.byteLength(labelled('v2', c, pad(c))), 0);
    const metricsBefore = count(await scrape(rx.url), 'relay_receiver_bytes_received_total');
    const res = await relay(sendArgs(src, [rx.url], 'www', ['--json']));
    expect(res.code, res.stdout.slice(-3000) + res.stderr).to.equal(0);
    const events = jsonLines(res.stdout);
    const v2 = stepId(events);
    const received = receivedEvents(events);
    expect(received).to.have.length(1000);
    const unchanged = received.filter((e) => e.unchanged).map((e) => e.name).sort();
    const sent = received.filter((e) => !e.unchanged);
    expect(unchanged).to.deep.equal(names.filter((n) => !changed.includes(n)).sort());
    expect(sent.map((e) => e.name).sort()).to.deep.equal([...changed].sort());
    for (const e of received.filter((x) => x.unchanged)) expect(e.bytesSent).to.equal(0);
    const bytesSent = received.reduce((n, e) => n + e.bytesSent, 0);
    expect(bytesSent).to.equal(changedBytes);
    const staged = releaseEvents(events).find((e) => e.phase === 'staged')!;
    expect(staged).to.include({ files: 1000, linked: 990 });
    expect(releaseEvents(events).find((e) => e.phase === 'switched')).to.include({ id: v2, previous: v1 });
    const metricsDelta = count(await scrape(rx.url), 'relay_receiver_bytes_received_total') - metricsBefore;
    expect(metricsDelta, 'bytes the receiver took in for the re-release').to.equal(changedBytes);

    // Same inode for the unchanged files, a new one for the changed; the previous release is untouched.
    const old = path.join(home, '.releases', v1);
    const now = path.join(home, '.releases', v2);
    for (const n of names) {
      const [a, b] = await Promise.all([stat(path.join(old, n)), stat(path.join(now, n))]);
      if (changed.includes(n)) {
        expect(b.ino, n).to.not.equal(a.ino);
        expect(await readFile(path.join(old, n), 'utf8')).to.equal(labelled('v1', n, pad(n)));
        expect(await readFile(path.join(now, n), 'utf8')).to.equal(labelled('v2', n, pad(n)));
      } else {
        expect(b.ino, n).to.equal(a.ino);
        expect(b.nlink, n).to.be.at.least(2);
      }
    }
    expect(await releaseProblems(home, v1)).to.deep.equal([]);
    expect(await releaseProblems(home, v2)).to.deep.equal([]);

    // The text form says it per file and per node.
    const changed3 = names.filter((_, i) => i % 100 === 71);
    await writeTree(src, changed3, 'v3', pad);
    const text = await relay(sendArgs(src, [rx.url], 'www'));
    expect(text.code, text.stdout.slice(-3000) + text.stderr).to.equal(0);
    const lines = text.stdout.split('\n');
    const unchangedLines = lines.filter((l) => /^received \S+ \d+ bytes sha256=[0-9a-f]{64} on .* \(unchanged, no bytes sent\)$/.test(l));
    expect(unchangedLines).to.have.length(990);
    for (const c of changed3) expect(lines.some((l) => l.startsWith(`received ${c} `) && !l.includes('unchanged')), c).to.equal(true);
    expect(text.stdout).to.match(new RegExp(`^${rx.url.replace(/\./g, '\\.')}: release www ${ID.source.slice(1, -1)} staged: 1,000 files \\(.*\\), 990 unchanged \\(hard-linked, not sent\\)$`, 'm'));
    expect(text.stdout).to.match(/^done: 1,000 files on /m);
  });

  it('the text step of a re-release says where the unchanged files and the release are, as it does for sent files', async () => {
    const dir = await tmpDir('relay-inbox-');
    const rx = await startReceiverProcess({ dir });
    const home = path.join(dir, 'www');
    const src = await siteDir();
    const names = ['a.txt', 'b.txt', 'c.txt', 'sub/d.txt'];
    await writeTree(src, names, 'v1');
    const first = await relay(sendArgs(src, [rx.url], 'www'));
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    const v1 = (await currentId(home))!;
    // The first release's summary names the release's folder on the node.
    const folderLine = (id: string): RegExp => new RegExp(`^${rx.url.replace(/\./g, '\\.')}: 4 files confirmed \\(\\d+ B\\) → [^:]+:${path.join(dir, 'www', '.releases', id)}$`, 'm');
    expect(first.stdout).to.match(folderLine(v1));

    await writeTree(src, ['a.txt'], 'v2');
    const res = await relay(sendArgs(src, [rx.url], 'www'));
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    const v2 = (await currentId(home))!;
    const problems: string[] = [];
    if (!folderLine(v2).test(res.stdout)) {
      problems.push(`the per-node summary does not name ${path.join(dir, 'www', '.releases', v2)}: ${JSON.stringify(res.stdout.split('\n').find((l) => l.includes('files confirmed')))}`);
    }
    for (const n of ['b.txt', 'c.txt', 'sub/d.txt']) {
      const line = res.stdout.split('\n').find((l) => l.startsWith(`received ${n} `)) ?? '';
      const where = `:${path.join(dir, 'www', '.releases', v2, n)} in `;
      if (!line.includes(where) || line.includes(`→ ${rx.url}:`)) problems.push(`unchanged ${n} is not shown at node:${path.join(dir, 'www', '.releases', v2, n)}: ${JSON.stringify(line)}`);
    }
    const json = await relay(sendArgs(src, [rx.url], 'www', ['--json']));
    expect(json.code).to.equal(0);
    const v3 = stepId(jsonLines(json.stdout));
    for (const e of receivedEvents(jsonLines(json.stdout))) {
      if (e.path !== path.join(dir, 'www', '.releases', v3, e.name)) problems.push(`--json received ${e.name} (unchanged: ${e.unchanged}): path ${JSON.stringify(e.path)}, node ${JSON.stringify(e.node)}`);
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });

  it('--keep 2 after 4 releases leaves 2 complete releases; relay releases lists them with the current marked', async () => {
    const dir = await tmpDir('relay-inbox-');
    const rx = await startReceiverProcess({ dir });
    const home = path.join(dir, 'www');
    const src = await siteDir();
    const names = treeNames(20);
    const ids: string[] = [];
    for (const label of ['r1', 'r2', 'r3', 'r4']) {
      await writeTree(src, names, label);
      const res = await relay(sendArgs(src, [rx.url], 'www', ['--keep', '2', '--json']));
      expect(res.code, res.stdout + res.stderr).to.equal(0);
      ids.push(stepId(jsonLines(res.stdout)));
    }
    const [r1, r2, r3, r4] = ids as [string, string, string, string];
    expect(await currentId(home)).to.equal(r4);
    const left = await releaseIds(home);
    expect(left.folders).to.deep.equal([r3, r4]);
    expect(left.manifests).to.deep.equal([r3, r4]);
    expect(left.other).to.deep.equal([]);
    for (const id of [r3, r4]) expect(await releaseProblems(home, id)).to.deep.equal([]);

    const listed = await relay(['releases', 'www', '--direct', '--to', rx.url, '--json']);
    expect(listed.code, listed.stderr).to.equal(0);
    const list = JSON.parse(listed.stdout) as ReleasesJson;
    expect(list.release).to.equal('www');
    expect(list.nodes).to.have.length(1);
    const node = list.nodes[0]!;
    expect(node).to.include({ target: rx.url, ok: true, current: r4 });
    expect(node.releases.map((r) => [r.id, r.current, r.files])).to.deep.equal([[r3, false, 20], [r4, true, 20]]);
    const bytes = names.reduce((n, x) => n + Buffer.byteLength(labelled('r4', x)), 0);
    expect(node.releases[1]!.bytes).to.equal(bytes);
    expect(node.releases[0]!.stagedAt).to.be.lessThan(node.releases[1]!.stagedAt);

    const table = await relay(['releases', 'www', '--direct', '--to', rx.url]);
    expect(table.code, table.stderr).to.equal(0);
    expect(table.stdout).to.match(/^NODE\s+RELEASE\s+STAGED\s+FILES\s+BYTES\s+STATE\s*$/m);
    const row = (id: string): string | undefined => table.stdout.split('\n').find((l) => l.includes(id));
    expect(row(r3), table.stdout).to.be.a('string').and.not.match(/current/);
    expect(row(r4), table.stdout).to.be.a('string').and.match(/\s20\s.*current\s*$/);
    expect(row(r1)).to.equal(undefined);
    expect(row(r2)).to.equal(undefined);

    // Never the current nor the previous one: back on r3, a release with --keep 1 keeps r5 and r3 (r4 goes).
    const back = await relay(['rollback', 'www', '--direct', '--to', rx.url]);
    expect(back.code, back.stdout + back.stderr).to.equal(0);
    expect(await currentId(home)).to.equal(r3);
    await writeTree(src, names, 'r5');
    const res5 = await relay(sendArgs(src, [rx.url], 'www', ['--keep', '1', '--json']));
    expect(res5.code, res5.stdout + res5.stderr).to.equal(0);
    const r5 = stepId(jsonLines(res5.stdout));
    expect(releaseEvents(jsonLines(res5.stdout)).find((e) => e.phase === 'switched')).to.include({ previous: r3 });
    expect((await releaseIds(home)).folders).to.deep.equal([r3, r5]);
    expect((await releaseIds(home)).manifests).to.deep.equal([r3, r5]);
    expect(await currentId(home)).to.equal(r5);
  });

  it('relay rollback switches back to the previous release, or to --release ID; a node with one release fails NO_RELEASE', async () => {
    const dir = await tmpDir('relay-inbox-');
    const rx = await startReceiverProcess({ dir });
    const home = path.join(dir, 'www');
    const src = await siteDir();
    const names = treeNames(30);
    const ids: string[] = [];
    for (const label of ['v1', 'v2', 'v3']) {
      await writeTree(src, names, label);
      const res = await relay(sendArgs(src, [rx.url], 'www', ['--json']));
      expect(res.code, res.stdout + res.stderr).to.equal(0);
      ids.push(stepId(jsonLines(res.stdout)));
    }
    const [v1, v2, v3] = ids as [string, string, string];
    expect([...(await labelsOf(home, names))]).to.deep.equal(['v3']);

    const back = await relay(['rollback', 'www', '--direct', '--to', rx.url]);
    expect(back.code, back.stdout + back.stderr).to.equal(0);
    expect(back.stdout).to.contain(`${rx.url}: www/current back to ${v2} (was ${v3})`);
    expect(await currentTarget(home)).to.equal(`.releases/${v2}`);
    expect([...(await labelsOf(home, names))]).to.deep.equal(['v2']);

    const again = await relay(['rollback', 'www', '--direct', '--to', rx.url, '--json']);
    expect(again.code, again.stdout + again.stderr).to.equal(0);
    expect(releaseEvents(jsonLines(again.stdout))).to.deep.include({ type: 'release', target: rx.url, release: 'www', id: v1, phase: 'rolled-back', previous: v2 });
    expect(await currentTarget(home)).to.equal(`.releases/${v1}`);
    expect([...(await labelsOf(home, names))]).to.deep.equal(['v1']);

    const to3 = await relay(['rollback', 'www', '--direct', '--to', rx.url, '--release', v3]);
    expect(to3.code, to3.stdout + to3.stderr).to.equal(0);
    expect(await currentTarget(home)).to.equal(`.releases/${v3}`);
    expect([...(await labelsOf(home, names))]).to.deep.equal(['v3']);
    // Rollbacks remove nothing.
    expect((await releaseIds(home)).manifests).to.deep.equal([v1, v2, v3]);

    const unknown = await relay(['rollback', 'www', '--direct', '--to', rx.url, '--release', '20200101T000000000Z-abcdef']);
    expect(unknown.code, unknown.stdout + unknown.stderr).to.equal(1);
    expect(unknown.stdout).to.contain('NO_RELEASE');
    expect(await currentTarget(home)).to.equal(`.releases/${v3}`);

    // A node with a single release has nothing to roll back to.
    const dir2 = await tmpDir('relay-inbox-');
    const rx2 = await startReceiverProcess({ dir: dir2 });
    const only = await relay(sendArgs(src, [rx2.url], 'www', ['--json']));
    expect(only.code).to.equal(0);
    const single = stepId(jsonLines(only.stdout));
    const none = await relay(['rollback', 'www', '--direct', '--to', rx2.url]);
    expect(none.code, none.stdout + none.stderr).to.equal(1);
    expect(none.stdout).to.match(new RegExp(`^FAILED release www .* on ${rx2.url.replace(/\./g, '\\.')}: NO_RELEASE: `, 'm'));
    expect(await currentTarget(path.join(dir2, 'www'))).to.equal(`.releases/${single}`);
  });

  describe('plain sends into a release are refused', () => {
    let dir: string;
    let rx: ReceiverProcess;
    let home: string;
    let id: string;
    let file: string;

    beforeEach(async () => {
      dir = await tmpDir('relay-inbox-');
      rx = await startReceiverProcess({ dir });
      home = path.join(dir, 'www');
      const src = await siteDir();
      await writeTree(src, ['index.html', 'x'], 'v1');
      const res = await relay(sendArgs(src, [rx.url], 'www', ['--json']));
      expect(res.code, res.stdout + res.stderr).to.equal(0);
      id = stepId(jsonLines(res.stdout));
      file = path.join(await tmpDir(), 'evil.txt');
      await writeFile(file, 'not part of any release\n');
    });

    async function snapshot(): Promise<string> {
      const ids = await releaseIds(home);
      return JSON.stringify({ ids, top: await readdir(home), current: await currentTarget(home), files: [...(await treeDigests(path.join(home, '.releases', id)))] });
    }

    for (const as of ['www/.releases/x', 'www/.releases/x/y.txt', 'www/current', 'www/current/x', 'www/current/new.txt']) {
      it(`a plain send as ${as} exits 1 with BAD_NAME and writes nothing`, async () => {
        const before = await snapshot();
        const res = await relay(['send', '--direct', '--to', rx.url, '--as', as, file]);
        expect(res.code, res.stdout + res.stderr).to.equal(1);
        expect(res.stdout).to.contain(`FAILED ${as} to ${rx.url}: BAD_NAME: `);
        expect(await snapshot()).to.equal(before);
        expect(await readFile(path.join(home, 'current', 'x'), 'utf8')).to.equal(labelled('v1', 'x'));
        expect(await partialEntries(dir)).to.deep.equal([]);
        expect(await readdir(dir)).to.have.members(['www', '.relay-partial']);
      });
    }

    it('a plain send over a file of a complete release (www/.releases/<id>/index.html) exits 1 with BAD_NAME and writes nothing', async () => {
      const before = await snapshot();
      const as = `www/.releases/${id}/index.html`;
      const res = await relay(['send', '--direct', '--to', rx.url, '--as', as, file]);
      expect(res.code, res.stdout + res.stderr).to.equal(1);
      expect(await snapshot()).to.equal(before);
      expect(await readFile(path.join(home, 'current', 'index.html'), 'utf8')).to.equal(labelled('v1', 'index.html'));
      // The spec: a plain send of a name inside NAME/.releases/ is refused with BAD_NAME.
      expect(res.stdout).to.contain(`FAILED ${as} to ${rx.url}: BAD_NAME: `);
    });
  });

  it('one target that cannot stage (DISK_FULL): no target switches, the staged release is discarded everywhere, exit 1 naming that node', async () => {
    const goodDir = await tmpDir('relay-inbox-');
    const fullDir = await tmpDir('relay-inbox-');
    const good = await startReceiverProcess({ dir: goodDir });
    let full = await startReceiverProcess({ dir: fullDir });
    const src = await siteDir();
    const names = treeNames(40);
    await writeTree(src, names, 'v1');
    const first = await relay(sendArgs(src, [good.url, full.url], 'www', ['--json']));
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    const v1 = stepId(jsonLines(first.stdout));

    // The second node now keeps 100 TiB free: it refuses every offer.
    process.kill(full.pid, 'SIGTERM');
    await full.exited;
    full = await restart(full, fullDir, ['--min-free', '100T']);
    await writeTree(src, names, 'v2');

    const res = await relay(sendArgs(src, [good.url, full.url], 'www', ['--json']));
    expect(res.code, res.stdout + res.stderr).to.equal(1);
    const events = jsonLines(res.stdout);
    const v2 = stepId(events);
    const steps = releaseEvents(events);
    expect(steps.find((e) => e.target === full.url && e.phase === 'failed'), res.stdout).to.include({ code: 'DISK_FULL' });
    expect(steps.find((e) => e.target === good.url && e.phase === 'staged'), 'the healthy node staged').to.not.equal(undefined);
    expect(steps.filter((e) => e.phase === 'switched'), 'no node switched').to.deep.equal([]);
    expect(steps.filter((e) => e.phase === 'discarded').map((e) => e.target).sort()).to.deep.equal([good.url, full.url].sort());
    expect(events.at(-1)).to.include({ type: 'done', ok: false });

    const text = await relay(sendArgs(src, [good.url, full.url], 'www'));
    expect(text.code, text.stdout + text.stderr).to.equal(1);
    expect(text.stdout).to.match(new RegExp(`^FAILED release www \\S+ on ${full.url.replace(/\./g, '\\.')}: DISK_FULL: `, 'm'));
    expect(text.stdout).to.not.match(/current →/);

    for (const [d, what] of [[goodDir, 'healthy'], [fullDir, 'full']] as const) {
      const home = path.join(d, 'www');
      expect(await currentTarget(home), `${what} node's current`).to.equal(`.releases/${v1}`);
      const ids = await releaseIds(home);
      expect(ids.folders, `${what} node's release folders (${v2} discarded)`).to.deep.equal([v1]);
      expect(ids.manifests, `${what} node's manifests`).to.deep.equal([v1]);
      expect(await releaseProblems(home, v1)).to.deep.equal([]);
      expect([...(await labelsOf(home, names))]).to.deep.equal(['v1']);
      expect(await partialEntries(d)).to.deep.equal([]);
    }
  });

  it('a node whose current is not a release link (an operator made it a folder): refused BAD_NAME before any byte, no node switches', async () => {
    const aDir = await tmpDir('relay-inbox-');
    const bDir = await tmpDir('relay-inbox-');
    const a = await startReceiverProcess({ dir: aDir });
    const b = await startReceiverProcess({ dir: bDir });
    const src = await siteDir();
    const names = treeNames(10);
    await writeTree(src, names, 'v1');
    const first = await relay(sendArgs(src, [a.url, b.url], 'www', ['--json']));
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    const v1 = stepId(jsonLines(first.stdout));
    const bCurrent = path.join(bDir, 'www', 'current');
    await rm(bCurrent);
    await mkdir(bCurrent);
    await writeFile(path.join(bCurrent, 'keep.txt'), 'operator\n');

    await writeTree(src, names, 'v2');
    const r = await relay(sendArgs(src, [a.url, b.url], 'www', ['--json']));
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    const failed = releaseEvents(jsonLines(r.stdout)).find((e) => e.target === b.url && e.phase === 'failed');
    expect(failed, r.stdout).to.include({ code: 'BAD_NAME' });
    expect(receivedEvents(jsonLines(r.stdout)).filter((e) => e.target === b.url)).to.deep.equal([]);
    expect(releaseEvents(jsonLines(r.stdout)).filter((e) => e.phase === 'switched')).to.deep.equal([]);
    expect(await currentTarget(path.join(aDir, 'www'))).to.equal(`.releases/${v1}`);
    expect((await releaseIds(path.join(aDir, 'www'))).folders, 'a discarded v2').to.deep.equal([v1]);
    expect((await releaseIds(path.join(bDir, 'www'))).folders, 'nothing staged on b').to.deep.equal([v1]);
    expect(await readdir(bCurrent)).to.deep.equal(['keep.txt']);
    // b refused the release's first part: nothing was made there, so it is not asked to discard (a discarded a's).
    const steps = releaseEvents(jsonLines(r.stdout));
    expect(steps.filter((e) => e.phase === 'discarded').map((e) => e.target)).to.deep.equal([a.url]);
    expect(r.stderr).to.not.contain('discard failed');
  });

  it('a switch that fails on one node after it staged: without --rollback-on-failure the others stay switched (exit 1); with it they go back', async () => {
    const aDir = await tmpDir('relay-inbox-');
    const bDir = await tmpDir('relay-inbox-');
    const a = await startReceiverProcess({ dir: aDir });
    const b = await startReceiverProcess({ dir: bDir });
    // a behind a proxy that holds its bytes: b stages first, then its current is broken, then a goes on.
    const proxy = new FaultProxy(a.port);
    await proxy.start();
    track(() => proxy.close());
    const src = await siteDir();
    const names = treeNames(10);
    await writeTree(src, names, 'v1');
    const first = await relay(sendArgs(src, [proxy.url, b.url], 'www', ['--json']));
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    const v1 = stepId(jsonLines(first.stdout));
    const bCurrent = path.join(bDir, 'www', 'current');

    /** One release step in which b's current becomes an operator's folder between b's stage and the switch. */
    const breakAfterStage = async (label: string, extra: string[]): Promise<{ code: number | null; out: string }> => {
      await writeTree(src, names, label);
      proxy.freeze();
      const step = new StreamedRelay(sendArgs(src, [proxy.url, b.url], 'www', ['--json', ...extra]));
      await step.waitEvents((e) => e.type === 'release' && e.target === b.url && e.phase === 'staged');
      await rm(bCurrent);
      await mkdir(bCurrent);
      await writeFile(path.join(bCurrent, 'keep.txt'), 'operator\n');
      proxy.thaw();
      const r = await step.result;
      return { code: r.code, out: r.stdout + r.stderr };
    };

    const plain = await breakAfterStage('v2', []);
    expect(plain.code, plain.out).to.equal(1);
    const v2 = stepId(jsonLines(plain.out));
    const steps = releaseEvents(jsonLines(plain.out));
    expect(steps.find((e) => e.target === b.url && e.phase === 'failed'), plain.out).to.include({ code: 'BAD_NAME' });
    expect(steps.find((e) => e.target === proxy.url && e.phase === 'switched')).to.include({ previous: v1 });
    expect(await currentTarget(path.join(aDir, 'www'))).to.equal(`.releases/${v2}`);

    // The operator puts b's link back (to v1); the next release breaks it again after b staged.
    await rm(bCurrent, { recursive: true });
    await symlink(`.releases/${v1}`, bCurrent);
    const back = await breakAfterStage('v3', ['--rollback-on-failure']);
    expect(back.code, back.out).to.equal(1);
    const v3 = stepId(jsonLines(back.out));
    const steps3 = releaseEvents(jsonLines(back.out));
    expect(steps3.find((e) => e.target === proxy.url && e.phase === 'switched')).to.include({ id: v3, previous: v2 });
    expect(steps3.find((e) => e.target === proxy.url && e.phase === 'rolled-back'), back.out).to.include({ id: v2 });
    expect(await currentTarget(path.join(aDir, 'www'))).to.equal(`.releases/${v2}`);
    expect([...(await labelsOf(path.join(aDir, 'www'), names))]).to.deep.equal(['v2']);
    // b's folder is left as the operator made it.
    expect(await readdir(bCurrent)).to.deep.equal(['keep.txt']);
  });

  describe('kill -9 of the receiver', () => {
    /** Sizes over --small-max, so files go one by one and a step takes long enough to be cut. */
    const BIG = 300_000;

    it('while staging the second release: current stays the old release (complete), and a re-run switches to the new content', async () => {
      const dir = await tmpDir('relay-inbox-');
      const home = path.join(dir, 'www');
      let rx = await startReceiverProcess({ dir });
      const src = await siteDir();
      const names = treeNames(40);
      await writeTree(src, names, 'v1', () => BIG);
      const first = await relay(sendArgs(src, [rx.url], 'www', ['--json']));
      expect(first.code, first.stdout + first.stderr).to.equal(0);
      const v1 = stepId(jsonLines(first.stdout));

      await writeTree(src, names, 'v2', () => BIG);
      const step = new StreamedRelay(sendArgs(src, [rx.url], 'www', ['--json', '--bwlimit', '2M', '--files-in-flight', '2', '--timeout', '30s']));
      await step.waitEvents((e) => e.type === 'received', 8);
      await kill9(rx);
      const receivedBeforeKill = receivedEvents(step.events).length;
      await step.proc.kill('SIGKILL');
      expect(step.events.some((e) => e.type === 'release' && e.phase === 'staged'), 'killed before staging ended').to.equal(false);

      // On disk right after the crash, and again once the receiver is back.
      for (const when of ['after the kill', 'after the restart']) {
        if (when === 'after the restart') rx = await restart(rx, dir);
        expect(await currentTarget(home), when).to.equal(`.releases/${v1}`);
        expect(await releaseProblems(home, v1), when).to.deep.equal([]);
        expect([...(await labelsOf(home, names))], when).to.deep.equal(['v1']);
        expect((await releaseIds(home)).manifests, `${when}: only v1 is complete`).to.deep.equal([v1]);
      }
      const listed = JSON.parse((await relay(['releases', 'www', '--direct', '--to', rx.url, '--json'])).stdout) as ReleasesJson;
      expect(listed.nodes[0]!.releases.map((r) => r.id)).to.deep.equal([v1]);

      const rerun = await relay(sendArgs(src, [rx.url], 'www', ['--json']));
      expect(rerun.code, rerun.stdout.slice(-3000) + rerun.stderr).to.equal(0);
      const v2 = stepId(jsonLines(rerun.stdout));
      expect(await currentTarget(home)).to.equal(`.releases/${v2}`);
      expect(await releaseProblems(home, v2)).to.deep.equal([]);
      expect(await treeDigests(path.join(home, 'current'))).to.deep.equal(await treeDigests(src));
      // What the cut-off attempt had confirmed is taken from its folder, not sent again.
      const reused = receivedEvents(jsonLines(rerun.stdout)).filter((e) => e.unchanged).length;
      expect(reused, 'files of the cut-off staging reused').to.be.at.least(receivedBeforeKill);
    });

    it('while staging a first release: no current while it is down; the send goes on once the receiver is back and switches', async () => {
      const dir = await tmpDir('relay-inbox-');
      const home = path.join(dir, 'www');
      let rx = await startReceiverProcess({ dir });
      const src = await siteDir();
      const names = treeNames(30);
      await writeTree(src, names, 'v1', () => BIG);
      const step = new StreamedRelay(sendArgs(src, [rx.url], 'www', ['--json', '--bwlimit', '2M', '--files-in-flight', '2', '--timeout', '30s']));
      await step.waitEvents((e) => e.type === 'received', 6);
      await kill9(rx);
      expect(await currentTarget(home)).to.equal(null);
      expect((await releaseIds(home)).manifests).to.deep.equal([]);
      rx = await restart(rx, dir);
      expect(await currentTarget(home)).to.equal(null);

      const res = await step.result;
      expect(res.code, res.stdout.slice(-3000) + res.stderr.slice(-3000)).to.equal(0);
      const id = stepId(step.events);
      expect(await currentTarget(home)).to.equal(`.releases/${id}`);
      expect(await releaseProblems(home, id)).to.deep.equal([]);
      expect(await treeDigests(path.join(home, 'current'))).to.deep.equal(await treeDigests(src));

      const rerun = await relay(sendArgs(src, [rx.url], 'www', ['--json']));
      expect(rerun.code, rerun.stdout.slice(-3000) + rerun.stderr).to.equal(0);
      expect(await treeDigests(path.join(home, 'current'))).to.deep.equal(await treeDigests(src));
    });

    it('at random moments of small releases (8 rounds, half of them around the switch): current always names a complete release; a final re-run succeeds', async function () {
      this.timeout(150_000);
      const dir = await tmpDir('relay-inbox-');
      const home = path.join(dir, 'www');
      let rx = await startReceiverProcess({ dir });
      const src = await siteDir();
      const names = [...treeNames(40), 'big/a.bin', 'big/b.bin'];
      const pad = (n: string): number => (n.startsWith('big/') ? 400_000 : n.length * 13);
      await writeTree(src, names, 'r0', pad);
      const base = new StreamedRelay(sendArgs(src, [rx.url], 'www', ['--json', '--keep', '2']));
      const baseRes = await base.result;
      expect(baseRes.code, baseRes.stdout + baseRes.stderr).to.equal(0);
      const eventsPerStep = base.events.length;

      const check = async (when: string): Promise<void> => {
        const id = await currentId(home);
        if (id === null) return expect.fail(`${when}: no current after a first release had switched`);
        expect(await releaseProblems(home, id), `${when}: current → ${id}`).to.deep.equal([]);
        expect((await labelsOf(home, names)).size, `${when}: one release's contents`).to.equal(1);
      };
      const outcomes: string[] = [];
      for (let round = 1; round <= 8; round++) {
        await writeTree(src, names, `r${round}`, pad);
        const step = new StreamedRelay(sendArgs(src, [rx.url], 'www', ['--json', '--keep', '2', '--timeout', '20s']));
        // A random moment: after a random one of the events a step prints, plus up to 30 ms; every other
        // round within 4 ms of "staged" or "switched", where the switch and --keep's removals run.
        if (round % 2 === 1) await step.waitEvents(() => true, 1 + Math.floor(Math.random() * eventsPerStep)).catch(() => undefined);
        else await step.waitEvents((e) => e.type === 'release' && e.phase === (round % 4 === 2 ? 'staged' : 'switched')).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * (round % 2 === 1 ? 30 : 4)));
        const last = step.events.at(-1);
        outcomes.push(`round ${round}: killed after ${step.events.length} events (last ${last?.type}${last?.type === 'release' ? ` ${last.phase}` : ''})${step.running ? '' : ' (step had ended)'}`);
        await kill9(rx);
        await step.proc.kill('SIGKILL');
        await check(`round ${round}, receiver down`);
        rx = await restart(rx, dir);
        await check(`round ${round}, receiver restarted`);
        const listed = await relay(['releases', 'www', '--direct', '--to', rx.url, '--json']);
        expect(listed.code, listed.stdout + listed.stderr).to.equal(0);
        expect((JSON.parse(listed.stdout) as ReleasesJson).nodes[0]!.current, `round ${round}`).to.equal(await currentId(home));
      }
      const final = await relay(sendArgs(src, [rx.url], 'www', ['--json', '--keep', '2']));
      expect(final.code, `${outcomes.join('\n')}\n${final.stdout.slice(-3000)}${final.stderr}`).to.equal(0);
      const id = stepId(jsonLines(final.stdout));
      expect(await currentId(home)).to.equal(id);
      expect(await releaseProblems(home, id)).to.deep.equal([]);
      expect(await treeDigests(path.join(home, 'current'))).to.deep.equal(await treeDigests(src));
      expect([...(await labelsOf(home, names))]).to.deep.equal(['r8']);
      if (process.env.RELEASE_TEST_TRACE) console.log(outcomes.join('\n'));
    });
  });

  it('through the sender agent: release, unchanged re-release, relay releases, relay rollback', async () => {
    const dir = await tmpDir('relay-inbox-');
    const home = path.join(dir, 'www');
    const rx = await startReceiverProcess({ dir });
    const src = await siteDir();
    const names = treeNames(200);
    await writeTree(src, names, 'v1');
    const agent = await startAgent({ receivers: { a: rx.url }, allowRoots: [path.dirname(src)] });

    const first = await agent.relay(['send', src, '--to', 'a', '--release', 'www', '--json']);
    expect(first.code, first.stdout.slice(-2000) + first.stderr).to.equal(0);
    const v1 = stepId(jsonLines(first.stdout));
    expect(releaseEvents(jsonLines(first.stdout)).find((e) => e.phase === 'switched')).to.include({ target: 'a', id: v1, previous: null });
    expect(await currentTarget(home)).to.equal(`.releases/${v1}`);
    expect([...(await labelsOf(home, names))]).to.deep.equal(['v1']);

    const changed = [names[5]!, names[150]!];
    await writeTree(src, changed, 'v2');
    const second = await agent.relay(['send', src, '--to', 'a', '--release', 'www', '--json']);
    expect(second.code, second.stdout.slice(-2000) + second.stderr).to.equal(0);
    const events = jsonLines(second.stdout);
    const v2 = stepId(events);
    const received = receivedEvents(events);
    expect(received).to.have.length(200);
    expect(received.filter((e) => !e.unchanged).map((e) => e.name).sort()).to.deep.equal([...changed].sort());
    expect(received.reduce((n, e) => n + e.bytesSent, 0)).to.equal(changed.reduce((n, c) => n + Buffer.byteLength(labelled('v2', c)), 0));
    expect(releaseEvents(events).find((e) => e.phase === 'staged')).to.include({ files: 200, linked: 198 });
    expect(await currentTarget(home)).to.equal(`.releases/${v2}`);
    for (const n of names) {
      const [a, b] = await Promise.all([lstat(path.join(home, '.releases', v1, n)), lstat(path.join(home, '.releases', v2, n))]);
      expect(b.ino === a.ino, n).to.equal(!changed.includes(n));
    }
    expect(await readFile(path.join(home, 'current', changed[0]!), 'utf8')).to.equal(labelled('v2', changed[0]!));

    const listed = await agent.relay(['releases', 'www', '--to', 'a', '--json']);
    expect(listed.code, listed.stderr).to.equal(0);
    const list = JSON.parse(listed.stdout) as ReleasesJson;
    expect(list.nodes).to.have.length(1);
    expect(list.nodes[0]).to.include({ target: 'a', ok: true, current: v2 });
    expect(list.nodes[0]!.releases.map((r) => [r.id, r.current, r.files])).to.deep.equal([[v1, false, 200], [v2, true, 200]]);
    const table = await agent.relay(['releases', 'www', '--to', 'a']);
    expect(table.code).to.equal(0);
    expect(table.stdout).to.match(new RegExp(`^a\\s+${v2}\\s.*current\\s*$`, 'm'));

    const back = await agent.relay(['rollback', 'www', '--to', 'a']);
    expect(back.code, back.stdout + back.stderr).to.equal(0);
    expect(back.stdout).to.contain(`a: www/current back to ${v1} (was ${v2})`);
    expect(await currentTarget(home)).to.equal(`.releases/${v1}`);
    expect([...(await labelsOf(home, names))]).to.deep.equal(['v1']);
    const forward = await agent.relay(['rollback', 'www', '--to', 'a', '--release', v2]);
    expect(forward.code, forward.stdout + forward.stderr).to.equal(0);
    expect(await currentTarget(home)).to.equal(`.releases/${v2}`);

    // The same usage rules through the agent.
    const as = await agent.relay(['send', src, '--to', 'a', '--release', 'www', '--as', 'x']);
    expect(as.code, as.stdout + as.stderr).to.equal(2);
    expect(as.stderr).to.contain('USAGE');
    expect(await currentTarget(home)).to.equal(`.releases/${v2}`);
  });

  describe('usage errors (exit 2, nothing sent)', () => {
    const cases: Array<[string, string[], RegExp]> = [
      ['--as with --release', ['--release', 'www', '--as', 'x'], /USAGE: --as and --release do not go together/],
      ['a release name with ..', ['--release', '../x'], /USAGE: bad release name/],
      ['a release name with a hidden segment', ['--release', '.hidden'], /USAGE: bad release name/],
      ['a release name with a hidden inner segment', ['--release', 'www/.releases'], /USAGE: bad release name/],
      ['--keep 0', ['--release', 'www', '--keep', '0'], /--keep/],
    ];
    for (const [what, extra, message] of cases) {
      it(`exits 2 for ${what}`, async () => {
        const dir = await tmpDir('relay-inbox-');
        const rx = await startReceiverProcess({ dir });
        const src = await siteDir();
        await writeTree(src, ['index.html'], 'v1');
        const res = await relay(['send', src, '--direct', '--to', rx.url, ...extra]);
        expect(res.code, res.stdout + res.stderr).to.equal(2);
        expect(res.stderr).to.match(message);
        expect(await readdir(dir)).to.not.include.members(['www', 'x', 'site']);
        expect(await partialEntries(dir)).to.deep.equal([]);
        expect(count(await scrape(rx.url), 'relay_receiver_bytes_received_total')).to.equal(0);
      });
    }

    it('relay rollback --release with something that is not a release id exits 2', async () => {
      const res = await relay(['rollback', 'www', '--direct', '--to', 'http://127.0.0.1:1', '--release', 'latest']);
      expect(res.code, res.stdout + res.stderr).to.equal(2);
      expect(res.stderr).to.contain('USAGE');
    });
  });
});
