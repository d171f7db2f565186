/**
 * The receiver's releases, driven directly (no sockets): what a staging accepts, what makes a release
 * complete, and how current, --keep, rollback and discard move. The files are real files in a temp folder,
 * written where a transfer would publish them.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readlink, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ActionRunner, Releases } from '@relayer/agent-receiver';
import { ErrorCode, newReleaseId, type ManifestEntry } from '@relayer/common';
import { checkDeploy, checkReleaseId, namesInRelease, FileList } from '@relayer/agent-sender';
import { closeAll, expectRejectsCode, expectThrowsCode, testLogger, tmpDir } from '../support/util.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const entry = (name: string, content: string, mode = 0o644): ManifestEntry => ({ name, size: Buffer.byteLength(content), mode, sha256: sha(content) });

let seq = 0;
/** Ids in increasing order, as time would give them. */
const nextId = (): string => newReleaseId(new Date(Date.UTC(2026, 11, 4, 3, 0, 0, seq++)));

describe('releases on a receiver', () => {
  let root: string;
  let releases: Releases;

  beforeEach(async () => {
    root = await tmpDir();
    releases = new Releases({ root, node: 'n1', log: testLogger(), actions: new ActionRunner({ dir: undefined, log: testLogger() }) });
  });
  afterEach(closeAll);

  /** Stages a release of `files` (name → content), writing the files the node does not hold; returns its id. */
  async function stageRelease(files: Record<string, string>, opts: { id?: string; modes?: Record<string, number> } = {}): Promise<{ id: string; held: number[] }> {
    const id = opts.id ?? nextId();
    const entries = Object.entries(files).map(([n, c]) => entry(n, c, opts.modes?.[n]));
    const { held } = await releases.begin({ release: 'www', id, offset: 0, files: entries });
    for (const [i, e] of entries.entries()) {
      if (held.includes(i)) continue;
      releases.guardName(`www/.releases/${id}/${e.name}`);
      const file = path.join(root, 'www', '.releases', id, ...e.name.split('/'));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, files[e.name]!);
    }
    await releases.stage({ release: 'www', id, files: entries.length });
    return { id, held };
  }

  const current = async (): Promise<string> => readlink(path.join(root, 'www', 'current'));
  const read = async (name: string): Promise<string> => readFile(path.join(root, 'www', 'current', name), 'utf8');

  it('a staged release becomes current by a relative symlink .releases/<id>, and the previous one is named', async () => {
    const a = await stageRelease({ 'index.html': 'v1', 'css/site.css': 'body{}' });
    expect((await releases.switchTo({ release: 'www', id: a.id, keep: 5 })).previous).to.equal(null);
    expect(await current()).to.equal(`.releases/${a.id}`);
    expect(await read('css/site.css')).to.equal('body{}');
    const b = await stageRelease({ 'index.html': 'v2', 'css/site.css': 'body{}' });
    const r = await releases.switchTo({ release: 'www', id: b.id, keep: 5 });
    expect(r.previous).to.equal(a.id);
    expect(await read('index.html')).to.equal('v2');
  });

  it('files identical to the current release (sha256, mode, size) are hard-linked, not asked for', async () => {
    const a = await stageRelease({ 'same.txt': 'same', 'changed.txt': 'old', 'tool.sh': 'run' }, { modes: { 'tool.sh': 0o755 } });
    await releases.switchTo({ release: 'www', id: a.id, keep: 5 });
    // tool.sh keeps its content but loses the x bit: a different entry, so it is sent again.
    const b = await stageRelease({ 'same.txt': 'same', 'changed.txt': 'new', 'tool.sh': 'run' });
    expect(b.held).to.deep.equal([0]);
    const ino = async (id: string, n: string): Promise<number> => (await stat(path.join(root, 'www', '.releases', id, n))).ino;
    expect(await ino(b.id, 'same.txt')).to.equal(await ino(a.id, 'same.txt'));
    expect(await ino(b.id, 'changed.txt')).to.not.equal(await ino(a.id, 'changed.txt'));
    expect((await stat(path.join(root, 'www', '.releases', a.id, 'tool.sh'))).mode & 0o777).to.equal(0o755);
  });

  it('stage refuses a release with a file missing or different from its manifest (RELEASE_INCOMPLETE), and nothing is switched', async () => {
    const id = nextId();
    await releases.begin({ release: 'www', id, offset: 0, files: [entry('a', 'aaa'), entry('b', 'bbb')] });
    await mkdir(path.join(root, 'www', '.releases', id), { recursive: true });
    await writeFile(path.join(root, 'www', '.releases', id, 'a'), 'aaa');
    await writeFile(path.join(root, 'www', '.releases', id, 'b'), 'BBB');
    const err = await expectRejectsCode(releases.stage({ release: 'www', id, files: 2 }), ErrorCode.RELEASE_INCOMPLETE);
    expect(err.message).to.include('"b"');
    await expectRejectsCode(releases.switchTo({ release: 'www', id, keep: 5 }), ErrorCode.NO_RELEASE);
    const gone = await readlink(path.join(root, 'www', 'current')).then(() => 'exists', (e: NodeJS.ErrnoException) => e.code);
    expect(gone).to.equal('ENOENT');
  });

  it('a plain send cannot write into .releases/: only the listed files of a release being staged', async () => {
    const id = nextId();
    expectThrowsCode(() => releases.guardName('www/.releases/x'), ErrorCode.BAD_NAME);
    expectThrowsCode(() => releases.guardName('www/.releases'), ErrorCode.BAD_NAME);
    expectThrowsCode(() => releases.guardName(`www/.releases/${id}.json`), ErrorCode.BAD_NAME);
    // A well-formed id this node does not stage (it restarted?): the sender is told to begin again.
    expectThrowsCode(() => releases.guardName(`www/.releases/${id}/a`), ErrorCode.NO_RELEASE);
    await releases.begin({ release: 'www', id, offset: 0, files: [entry('a', 'a')] });
    // A file of a release being staged is made durable with the whole release (true), not file by file.
    expect(releases.guardName(`www/.releases/${id}/a`)).to.equal(true);
    expectThrowsCode(() => releases.guardName(`www/.releases/${id}/not-listed`), ErrorCode.BAD_NAME);
    expectThrowsCode(() => releases.guardName(`www/.releases/${id}`), ErrorCode.BAD_NAME);
    expect(releases.guardName('www/other.txt')).to.equal(false);
  });

  it('a file written over one hard-linked from the current release is held to the manifest like a sent one', async () => {
    const a = await stageRelease({ f: 'same', g: 'old' });
    await releases.switchTo({ release: 'www', id: a.id, keep: 5 });
    const id = nextId();
    const { held } = await releases.begin({ release: 'www', id, offset: 0, files: [entry('f', 'same'), entry('g', 'new')] });
    expect(held).to.deep.equal([0]);
    // A sender puts other bytes of the same size under the linked name (the release it came from keeps its own).
    const dir = path.join(root, 'www', '.releases', id);
    for (const [n, content] of [['f', 'evil'], ['g', 'new']] as const) {
      expect(releases.guardName(`www/.releases/${id}/${n}`)).to.equal(true);
      await rm(path.join(dir, n), { force: true });
      await writeFile(path.join(dir, n), content);
      releases.confirmed({ lease: `l-${n}`, name: `www/.releases/${id}/${n}`, size: content.length, sha256: sha(content), path: path.join(dir, n), unchanged: false });
    }
    const err = await expectRejectsCode(releases.stage({ release: 'www', id, files: 2 }), ErrorCode.RELEASE_INCOMPLETE);
    expect(err.message).to.include('"f"');
    expect(await read('f')).to.equal('same');
  });

  it('a release of many files (one syncfs for all) and one of a few (an fsync each) both stage and switch', async () => {
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`d${i % 3}/f${i}`, `content ${i}`]));
    const a = await stageRelease(many);
    await releases.switchTo({ release: 'www', id: a.id, keep: 5 });
    expect(await read('d1/f4')).to.equal('content 4');
    const b = await stageRelease({ ...many, 'd0/f0': 'changed', 'new.txt': 'n' });
    expect(b.held).to.have.length(39);
    await releases.switchTo({ release: 'www', id: b.id, keep: 5 });
    expect(await read('d0/f0')).to.equal('changed');
    expect(await read('new.txt')).to.equal('n');
    expect(await read('d2/f5')).to.equal('content 5');
  });

  it('--keep removes the oldest complete releases but never the current or the previous one', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { id } = await stageRelease({ 'f': `v${i}` });
      ids.push(id);
      await releases.switchTo({ release: 'www', id, keep: 2 });
    }
    expect((await releases.list({ release: 'www' })).releases.map((r) => r.id)).to.deep.equal(ids.slice(2));
    // keep 1 still keeps the previous one: a rollback stays possible.
    const { id } = await stageRelease({ 'f': 'v4' });
    const r = await releases.switchTo({ release: 'www', id, keep: 1 });
    expect(r.removed).to.deep.equal([ids[2]]);
    const list = await releases.list({ release: 'www' });
    expect(list.releases.map((x) => [x.id, x.current])).to.deep.equal([[ids[3], false], [id, true]]);
    expect(list.current).to.equal(id);
  });

  it('--keep never removes a newer release another send has staged and not yet switched to', async () => {
    const a = await stageRelease({ 'f': 'a' });
    await releases.switchTo({ release: 'www', id: a.id, keep: 1 });
    const b = await stageRelease({ 'f': 'b' });
    const c = await stageRelease({ 'f': 'c' });
    await releases.switchTo({ release: 'www', id: b.id, keep: 1 });
    await releases.switchTo({ release: 'www', id: c.id, keep: 1 });
    expect(await read('f')).to.equal('c');
  });

  it('rollback goes to the release before current by default, or to the one named; NO_RELEASE when there is none', async () => {
    const a = await stageRelease({ 'f': 'a' });
    await releases.switchTo({ release: 'www', id: a.id, keep: 5 });
    await expectRejectsCode(releases.rollback({ release: 'www' }), ErrorCode.NO_RELEASE);
    const b = await stageRelease({ 'f': 'b' });
    await releases.switchTo({ release: 'www', id: b.id, keep: 5 });
    const c = await stageRelease({ 'f': 'c' });
    await releases.switchTo({ release: 'www', id: c.id, keep: 5 });
    expect(await releases.rollback({ release: 'www' })).to.deep.equal({ previous: c.id, current: b.id });
    expect(await read('f')).to.equal('b');
    expect(await releases.rollback({ release: 'www', to: a.id })).to.deep.equal({ previous: b.id, current: a.id });
    expect(await read('f')).to.equal('a');
    await expectRejectsCode(releases.rollback({ release: 'www', to: nextId() }), ErrorCode.NO_RELEASE);
  });

  it('a switch asked again (the sender lost the reply) gets the same reply and its action runs once; after a restart it is not switched again', async () => {
    const actionDir = await tmpDir();
    const count = path.join(actionDir, 'runs');
    await writeFile(path.join(actionDir, 'deployed'), `#!/bin/sh\necho "$RELAY_RELEASE_ID" >> ${count}\n`, { mode: 0o755 });
    const actions = new ActionRunner({ dir: actionDir, log: testLogger() });
    releases = new Releases({ root, node: 'n1', log: testLogger(), actions });
    const then = { action: 'deployed', timeoutMs: 5000 };
    const a = await stageRelease({ 'f': 'a' });
    await releases.switchTo({ release: 'www', id: a.id, keep: 5 });
    const b = await stageRelease({ 'f': 'b' });
    const frame = { release: 'www', id: b.id, keep: 5, then };
    const [r1, r2] = await Promise.all([releases.switchTo(frame), releases.switchTo(frame)]);
    const r3 = await releases.switchTo(frame);
    expect(r1.previous).to.equal(a.id);
    expect(r2).to.deep.equal(r1);
    expect(r3).to.deep.equal(r1);
    expect(await readFile(count, 'utf8')).to.equal(`${b.id}\n`);
    // A new Releases over the same folder (the receiver restarted): current is b already; it stays, and the previous is still a.
    releases = new Releases({ root, node: 'n1', log: testLogger(), actions });
    const again = await releases.switchTo({ release: 'www', id: b.id, keep: 5 });
    expect(again.previous).to.equal(a.id);
    expect(await readlink(path.join(root, 'www', 'current'))).to.equal(`.releases/${b.id}`);
    expect(await read('f')).to.equal('b');
    await actions.close();
  });

  it('an action gone from the node by the time of the switch: the switch stands, the reply says the action failed', async () => {
    const a = await stageRelease({ f: 'a' });
    const r = await releases.switchTo({ release: 'www', id: a.id, keep: 5, then: { action: 'gone', timeoutMs: 5000 } });
    expect(await current()).to.equal(`.releases/${a.id}`);
    expect(r.action).to.include({ name: 'gone', ok: false, exitCode: null });
    expect(r.action!.output).to.contain('NO_ACTION');
  });

  it('discard removes a staged release, never the current one', async () => {
    const a = await stageRelease({ 'f': 'a' });
    await releases.switchTo({ release: 'www', id: a.id, keep: 5 });
    const b = await stageRelease({ 'f': 'b' });
    await releases.discard({ release: 'www', id: b.id });
    await releases.discard({ release: 'www', id: a.id });
    expect(await readdir(path.join(root, 'www', '.releases'))).to.have.members([a.id, `${a.id}.json`]);
    expect(await read('f')).to.equal('a');
  });

  it('a release whose staging was cut off gives its verified files to the next attempt (hashed again, hard-linked)', async () => {
    const cut = nextId();
    const entries = [entry('a', 'aaa'), entry('b', 'bbb'), entry('c', 'ccc')];
    await releases.begin({ release: 'www', id: cut, offset: 0, files: entries });
    await mkdir(path.join(root, 'www', '.releases', cut), { recursive: true });
    await writeFile(path.join(root, 'www', '.releases', cut, 'a'), 'aaa');
    await writeFile(path.join(root, 'www', '.releases', cut, 'b'), 'BAD');
    // The receiver restarts: a new Releases over the same folder forgets the staging.
    releases = new Releases({ root, node: 'n1', log: testLogger(), actions: new ActionRunner({ dir: undefined, log: testLogger() }) });
    const { held } = await releases.begin({ release: 'www', id: nextId(), offset: 0, files: entries });
    expect(held).to.deep.equal([0]);
  });

  it('a manifest part out of order, or a name twice, is a PROTOCOL error; a part after a restart is NO_RELEASE', async () => {
    const id = nextId();
    await expectRejectsCode(releases.begin({ release: 'www', id, offset: 1, files: [entry('a', 'a')] }), ErrorCode.NO_RELEASE);
    await releases.begin({ release: 'www', id, offset: 0, files: [entry('a', 'a')] });
    await expectRejectsCode(releases.begin({ release: 'www', id, offset: 5, files: [entry('b', 'b')] }), ErrorCode.PROTOCOL);
    await expectRejectsCode(releases.begin({ release: 'www', id, offset: 1, files: [entry('a', 'a')] }), ErrorCode.PROTOCOL);
    // The same part again (a lost reply) is answered again.
    await releases.begin({ release: 'www', id, offset: 0, files: [entry('a', 'a')] });
  });

  it('refuses a release whose folder passes through a symlink (www/current names the live release)', async () => {
    const a = await stageRelease({ 'f': 'a' });
    await releases.switchTo({ release: 'www', id: a.id, keep: 5 });
    await expectRejectsCode(releases.begin({ release: 'www/current', id: nextId(), offset: 0, files: [entry('x', 'x')] }), ErrorCode.BAD_NAME);
    await expectRejectsCode(releases.list({ release: 'www/current' }), ErrorCode.BAD_NAME);
    await expectRejectsCode(releases.rollback({ release: 'www/current' }), ErrorCode.BAD_NAME);
    expect(await readdir(path.join(root, 'www', '.releases', a.id))).to.deep.equal(['f']);
  });

  it('refuses release names with dot segments or traversal', async () => {
    for (const release of ['../x', '.hidden', 'a/.releases', '/abs']) {
      await expectRejectsCode(releases.begin({ release, id: nextId(), offset: 0, files: [] }), ErrorCode.BAD_NAME);
    }
  });
});

describe('deploy options (sender)', () => {
  it('checks --release, --keep and --then, and fills the defaults', () => {
    expect(checkDeploy({ name: 'www' }, { action: 'reload' })).to.deep.equal({
      release: { name: 'www', keep: 5, rollbackOnFailure: false }, then: { action: 'reload', timeoutMs: 300_000 },
    });
    expectThrowsCode(() => checkDeploy({ name: '../x' }, undefined), ErrorCode.USAGE);
    expectThrowsCode(() => checkDeploy({ name: 'www', keep: 0 }, undefined), ErrorCode.USAGE);
    expectThrowsCode(() => checkDeploy(undefined, { action: 'rm -rf /' }), ErrorCode.USAGE);
    expectThrowsCode(() => checkDeploy(undefined, { action: 'a', timeoutMs: 0 }), ErrorCode.USAGE);
    expectThrowsCode(() => checkReleaseId('latest'), ErrorCode.USAGE);
  });

  it('a single folder\'s files are named relative to it; several paths keep their names', () => {
    const list = new FileList();
    const site = list.addPlace('/src/build/site', 'site');
    list.add(site, 'index.html', 1);
    list.add(site, 'css/a.css', 1);
    expect([0, 1].map((i) => namesInRelease(list, ['/src/build/site']).at(i)!.name)).to.deep.equal(['index.html', 'css/a.css']);
    expect(namesInRelease(list, ['/src/build/site', '/src/other']).at(0)!.name).to.equal('site/index.html');
    const one = new FileList();
    one.add(one.addPlace('/src/app.bin', 'app.bin'), '', 1);
    expect(namesInRelease(one, ['/src/app.bin']).at(0)!.name).to.equal('app.bin');
  });
});
