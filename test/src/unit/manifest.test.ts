/**
 * A release's manifest on the sender (names, sizes, modes, sha256 of the real files, small ones hashed by
 * the reader's thread), the agent's cache of versions already hashed, and the receiver's one-call way to
 * make a staged release durable (syncfs) with its fallback.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, open as openFile, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { syncFileSystem } from '@relayer/agent-receiver';
import { ErrorCode } from '@relayer/common';
import { AllowRoots, buildManifest, ManifestBuild, ManifestCache, SmallFileReader, type SourceFile } from '@relayer/agent-sender';
import { closeAll, expectRejectsCode, tmpDir, track } from '../support/util.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('release manifest', () => {
  afterEach(closeAll);

  let root: string;
  let files: SourceFile[];
  let datas: Buffer[];
  beforeEach(async () => {
    root = await tmpDir('relay-manifest-');
    files = [];
    datas = [];
    // Empty, small, exactly one read buffer, larger than the reader's whole-file limit (hashed in lanes).
    for (const [i, size] of [0, 1, 4096, 256 * 1024, 256 * 1024 + 1, 1024 * 1024, 3 * 1024 * 1024 + 7].entries()) {
      const data = randomBytes(size);
      const file = path.join(root, `f${i}`);
      await writeFile(file, data);
      files.push({ file, name: `dir/f${i}`, size });
      datas.push(data);
    }
    await chmod(files[1]!.file, 0o750);
  });

  const list = (fs: SourceFile[]) => ({ length: fs.length, at: (i: number) => fs[i] });
  function reader(roots?: AllowRoots): SmallFileReader {
    const r = new SmallFileReader(roots);
    track(() => r.close());
    return r;
  }

  it('lists each file under its name with its size, sha256 and whether it is executable, in order', async () => {
    const m = await buildManifest(list(files));
    expect(m.map((e) => e.name)).to.deep.equal(files.map((f) => f.name));
    m.forEach((e, i) => {
      expect(e.size).to.equal(datas[i]!.length);
      expect(e.sha256).to.equal(sha(datas[i]!));
      expect(e.mode).to.equal(i === 1 ? 0o755 : 0o644);
    });
  });

  it('hashing small files in the reader\'s thread gives the same manifest as reading them one by one', async () => {
    const plain = await buildManifest(list(files));
    const threaded = await buildManifest(list(files), { reader: reader(await AllowRoots.resolve([root])) });
    expect(threaded).to.deep.equal(plain);
  });

  it('a file outside the allowed roots, or gone, fails the manifest with its code and name', async () => {
    const outside = await tmpDir('relay-outside-');
    await writeFile(path.join(outside, 'secret'), 'x');
    const r = reader(await AllowRoots.resolve([root]));
    const err = await expectRejectsCode(buildManifest(list([...files, { file: path.join(outside, 'secret'), name: 'secret', size: 1 }]), { reader: r }), ErrorCode.NOT_ALLOWED);
    expect(err.message).to.include('secret');
    await expectRejectsCode(buildManifest(list([{ file: path.join(root, 'gone'), name: 'gone', size: 3 }]), { reader: r }), ErrorCode.SOURCE);
  });

  it('with a cache, an unchanged file is not read again; a rewritten one is', async () => {
    const big = files.at(-1)!;
    // A clock far enough ahead that the files' last changes are not "racy" (see ManifestCache).
    const cache = new ManifestCache(100, () => Date.now() + 60_000);
    // The real file, its reads counted.
    let reads = 0;
    const open = async (file: string): Promise<FileHandle> => {
      const fh = await openFile(file, 'r');
      const read = fh.read.bind(fh) as (...a: unknown[]) => unknown;
      (fh as unknown as { read: (...a: unknown[]) => unknown }).read = (...a) => (reads++, read(...a));
      return fh;
    };
    const first = await buildManifest(list([big]), { cache, open });
    expect(first[0]!.sha256).to.equal(sha(datas.at(-1)!));
    expect(cache.size).to.equal(1);
    const readFirst = reads;
    expect(readFirst).to.be.greaterThan(0);
    // Same version: the cache answers, nothing is read.
    expect((await buildManifest(list([big]), { cache, open }))[0]!.sha256).to.equal(first[0]!.sha256);
    expect(reads).to.equal(readFirst);
    // Rewritten in place, same size, its mtime put back: the inode change time still tells.
    const before = await stat(big.file);
    const changed = randomBytes(big.size);
    await writeFile(big.file, changed);
    await utimes(big.file, before.atime, before.mtime);
    const again = await buildManifest(list([big]), { cache, open });
    expect(reads).to.be.greaterThan(readFirst);
    expect(again[0]!.sha256).to.equal(sha(changed)).and.not.equal(first[0]!.sha256);
  });

  it('a file changed in the last moments is not remembered (a rewrite in the same clock tick would look unchanged)', async () => {
    // The clock stands at the moment the files were written.
    const written = Math.max(...(await Promise.all(files.map(async (f) => (await stat(f.file)).ctimeMs))));
    const cache = new ManifestCache(100, () => written);
    await buildManifest(list(files), { cache });
    expect(cache.size).to.equal(0);
  });

  it('hashed as it goes: a file that cannot be read fails ready() with its name, and done settles without throwing', async () => {
    const build = new ManifestBuild(list([...files, { file: path.join(root, 'gone'), name: 'gone', size: 3 }]), { reader: reader() });
    const err = await expectRejectsCode(build.ready(files.length + 1), ErrorCode.SOURCE);
    expect(err.message).to.include('gone');
    await build.done;
    await expectRejectsCode(build.ready(1), ErrorCode.SOURCE);
    // Without a failure, ready(n) means the first n entries are there.
    const ok = new ManifestBuild(list(files));
    await ok.ready(2);
    expect(ok.entries.slice(0, 2).map((e) => e.sha256)).to.deep.equal(datas.slice(0, 2).map(sha));
    await ok.ready(files.length);
    expect(ok.entries.map((e) => e.sha256)).to.deep.equal(datas.map(sha));
  });

  it('the cache keeps the most recently used versions up to its bound', async () => {
    const cache = new ManifestCache(2, () => Date.now() + 60_000);
    const sts = [];
    for (const f of files.slice(0, 3)) sts.push(await stat(f.file, { bigint: true }));
    cache.set(sts[0]!, 'a'.repeat(64));
    cache.set(sts[1]!, 'b'.repeat(64));
    expect(cache.get(sts[0]!)).to.equal('a'.repeat(64));
    cache.set(sts[2]!, 'c'.repeat(64));
    expect(cache.size).to.equal(2);
    expect(cache.get(sts[1]!)).to.equal(undefined);
    expect(cache.get(sts[0]!)).to.equal('a'.repeat(64));
  });
});

describe('syncFileSystem: one syncfs for a staged release', () => {
  it('runs `sync -f` on the folder\'s file system where the command exists', async () => {
    const dir = await tmpDir('relay-syncfs-');
    await writeFile(path.join(dir, 'f'), 'x');
    expect(await syncFileSystem(dir)).to.equal(true);
  });

  it('says false (nothing claimed) where the command is missing, then and after', async () => {
    const dir = await tmpDir('relay-syncfs-');
    expect(await syncFileSystem(dir, 'relay-no-such-sync')).to.equal(false);
    expect(await syncFileSystem(dir, 'relay-no-such-sync')).to.equal(false);
  });

  it('says false for a folder that is not there (the caller\'s fsyncs then report why)', async () => {
    expect(await syncFileSystem(path.join(await tmpDir('relay-syncfs-'), 'gone'))).to.equal(false);
  });
});

