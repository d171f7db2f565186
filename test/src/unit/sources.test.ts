import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ErrorCode } from '@relayer/common';
import { expandSources, FileList } from '@relayer/agent-sender';
import { findExecutable } from '../support/executable.js';
import { expectRejectsCode, tmpDir, track } from '../support/util.js';

describe('expandSources: what a send of files and folders becomes', () => {
  it('lists a tree depth-first in name order with each file\'s size, files and folders mixed, symlinks skipped', async () => {
    const root = await tmpDir('relay-src-');
    const tree = path.join(root, 'site');
    const sizes: Record<string, number> = {
      'a.txt': 1, 'b/x.bin': 20, 'b/y/deep.bin': 300, 'b/z.bin': 0, 'c.txt': 4000, 'd/e.bin': 5,
    };
    for (const [rel, size] of Object.entries(sizes)) {
      await mkdir(path.dirname(path.join(tree, rel)), { recursive: true });
      await writeFile(path.join(tree, rel), Buffer.alloc(size, 1));
    }
    // Enough files in one folder that they are sized many at a time.
    for (let i = 0; i < 100; i++) {
      const rel = `m/f${String(i).padStart(3, '0')}`;
      await mkdir(path.join(tree, 'm'), { recursive: true });
      await writeFile(path.join(tree, rel), Buffer.alloc(i, 2));
      sizes[rel] = i;
    }
    await symlink(path.join(tree, 'a.txt'), path.join(tree, 'b', 'link'));

    const listed = await expandSources([tree]);
    const files = [...listed.files];
    const { skipped } = listed;
    expect(files.map((f) => f.name)).to.deep.equal(Object.keys(sizes).sort().map((rel) => `site/${rel}`));
    for (const f of files) expect(f.size, f.name).to.equal(sizes[f.name.slice('site/'.length)]);
    expect(files.every((f) => f.file === path.join(root, f.name))).to.equal(true);
    expect(skipped).to.deep.equal([{ name: 'site/b/link', kind: 'symlink', reason: 'symlinks are not followed' }]);
    expect(listed.unsendable).to.deep.equal([]);
  });

  it('sends a file under its base name or --as, and refuses --as with more than one path', async () => {
    const root = await tmpDir('relay-src-');
    await writeFile(path.join(root, 'app.tar'), Buffer.alloc(7, 1));
    const plain = [...(await expandSources([path.join(root, 'app.tar')])).files];
    expect(plain).to.deep.equal([{ file: path.join(root, 'app.tar'), name: 'app.tar', size: 7 }]);
    const renamed = [...(await expandSources([path.join(root, 'app.tar')], 'builds/42/app.tar')).files];
    expect(renamed).to.deep.equal([{ file: path.join(root, 'app.tar'), name: 'builds/42/app.tar', size: 7 }]);
    await expectRejectsCode(expandSources([path.join(root, 'app.tar'), path.join(root, 'app.tar')], 'x'), ErrorCode.USAGE);
  });

  it('sends two folders of the same name side by side, but refuses a file both would deliver', async () => {
    const root = await tmpDir('relay-src-');
    for (const rel of ['a/dist/x.js', 'b/dist/y.js', 'c/dist/x.js']) {
      await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await writeFile(path.join(root, rel), rel);
    }
    const both = [...(await expandSources([path.join(root, 'a/dist'), path.join(root, 'b/dist')])).files];
    expect(both.map((f) => [f.name, f.file])).to.deep.equal([
      ['dist/x.js', path.join(root, 'a/dist/x.js')],
      ['dist/y.js', path.join(root, 'b/dist/y.js')],
    ]);
    const err = await expectRejectsCode(expandSources([path.join(root, 'a/dist'), path.join(root, 'c/dist')]), ErrorCode.USAGE);
    expect(err.message).to.contain('two files would arrive as dist/x.js');
  });

  it('lists every entry that is not a regular file with its kind and reason, and still sends the rest', async () => {
    const root = await tmpDir('relay-src-');
    const tree = path.join(root, 't');
    await mkdir(tree);
    await writeFile(path.join(tree, 'a'), 'a\n');
    await symlink('/etc/passwd', path.join(tree, 'link'));
    execFileSync(findExecutable('mkfifo')!, [path.join(tree, 'fifo')]);
    // Node removes a socket's file when its server closes: listening while the tree is walked.
    const sock = net.createServer();
    await new Promise<void>((resolve) => sock.listen(path.join(tree, 'sock'), resolve));
    track(() => new Promise<void>((resolve) => sock.close(() => resolve())));
    const kinds = ['FIFO', 'symlink', 'socket'];
    // A device node needs root (CAP_MKNOD); /dev/null's numbers.
    if (process.getuid?.() === 0) {
      execFileSync(findExecutable('mknod')!, [path.join(tree, 'dev'), 'c', '1', '3']);
      kinds.unshift('character device');
    }
    const listed = await expandSources([tree]);
    expect([...listed.files].map((f) => f.name)).to.deep.equal(['t/a']);
    expect(listed.skipped.map((k) => k.kind)).to.deep.equal(kinds);
    for (const k of listed.skipped) expect(k.reason, k.name).to.be.a('string').and.not.be.empty;
    expect(listed.skipped.find((k) => k.kind === 'FIFO')).to.deep.include({ name: 't/fifo' });
    expect(listed.unsendable).to.deep.equal([]);
  });

  it('fails an entry whose name is not UTF-8 or would be refused, on its own, naming it; the rest is listed', async () => {
    const root = await tmpDir('relay-src-');
    await mkdir(path.join(root, 'raw', 'bad\\dir'), { recursive: true });
    await writeFile(path.join(root, 'raw', 'bad\\dir', 'inside'), 'x');
    await writeFile(path.join(root, 'raw', 'ok'), 'x');
    await writeFile(path.join(root, 'raw', 'bad\\name'), 'x');
    // Two names that are not UTF-8: both would read as "a\uFFFD" and name no file.
    for (const last of [0xfe, 0xff]) await writeFile(Buffer.concat([Buffer.from(path.join(root, 'raw', 'a')), Buffer.from([last])]), 'x');
    const listed = await expandSources([path.join(root, 'raw')]);
    expect([...listed.files].map((f) => f.name)).to.deep.equal(['raw/ok']);
    expect(listed.unsendable.map((u) => [u.name, u.code])).to.deep.equal([
      ['raw/a\uFFFD', ErrorCode.BAD_NAME], ['raw/a\uFFFD', ErrorCode.BAD_NAME],
      ['raw/bad\\dir', ErrorCode.BAD_NAME], ['raw/bad\\name', ErrorCode.BAD_NAME],
    ]);
    expect(listed.unsendable[0]!.message).to.contain('not valid UTF-8').and.to.contain(path.join(root, 'raw'));
    expect(listed.unsendable[2]!.message).to.contain('backslash').and.to.contain(path.join(root, 'raw', 'bad\\dir'));
  });

  it('fails a folder it cannot list (a path over PATH_MAX) on its own, naming it in words, not system-call text', async () => {
    const root = await tmpDir('relay-src-');
    await writeFile(path.join(root, 'top.txt'), 'x');
    // 30 levels of 150 characters: well over 4096 bytes of absolute path, made by relative steps in a
    // child (a shell's cd keeps the whole path and gives up), removed by rm, which walks it relatively.
    const segment = 'd'.repeat(150);
    execFileSync(process.execPath, ['-e', `const fs = require('fs'); process.chdir(process.argv[1]);
      for (let i = 0; i < 30; i++) { fs.mkdirSync('${segment}'); process.chdir('${segment}'); } fs.writeFileSync('f', 'deep');`, root]);
    track(() => void execFileSync(findExecutable('rm')!, ['-rf', root]));
    const listed = await expandSources([root], 'tree');
    expect([...listed.files].map((f) => f.name)).to.deep.equal(['tree/top.txt']);
    expect(listed.unsendable).to.have.length(1);
    const [deep] = listed.unsendable;
    expect(deep!.name.startsWith(`tree/${segment}/`)).to.equal(true);
    expect([ErrorCode.BAD_NAME, ErrorCode.IO]).to.include(deep!.code);
    expect(deep!.message).to.match(/too long/);
    expect(deep!.message).to.not.match(/ENAMETOOLONG|scandir/);
    expect(deep!.message.length, 'the long path is elided').to.be.below(700);
  });

  it('refuses a tree with nothing to send, saying what it skipped, and a name given with --as that the receiver would refuse', async () => {
    const root = await tmpDir('relay-src-');
    await mkdir(path.join(root, 'empty', 'sub'), { recursive: true });
    await expectRejectsCode(expandSources([path.join(root, 'empty')]), ErrorCode.SOURCE);
    await symlink('/etc/hostname', path.join(root, 'empty', 'h'));
    const err = await expectRejectsCode(expandSources([path.join(root, 'empty')]), ErrorCode.SOURCE);
    expect(err.message).to.contain('nothing to send').and.to.contain('1 symlink');
    await writeFile(path.join(root, 'f'), 'x');
    await expectRejectsCode(expandSources([path.join(root, 'f')], '../x'), ErrorCode.BAD_NAME);
    const long = await expectRejectsCode(expandSources([path.join(root, 'f')], `${'a'.repeat(20_000)}/..`), ErrorCode.BAD_NAME);
    expect(long.message.length, 'an echoed --as is bounded').to.be.below(400);
  });
});

describe('FileList: a job\'s files held compactly and built one at a time', () => {
  it('builds each file from its folder, its name there and its size; a file named directly is its own place', () => {
    const list = new FileList();
    const dir = list.addPlace('/srv/build/site', 'site');
    list.add(dir, 'index.html', 10);
    list.add(dir, 'app.js', 20);
    list.add(list.addPlace('/srv/build/app.tar', 'release.tar'), '', 30);
    list.add(list.addPlace('/', 'rootfiles'), 'x', 1);
    list.setSize(1, 21);
    expect(list.length).to.equal(4);
    expect([...list]).to.deep.equal([
      { file: '/srv/build/site/index.html', name: 'site/index.html', size: 10 },
      { file: '/srv/build/site/app.js', name: 'site/app.js', size: 21 },
      { file: '/srv/build/app.tar', name: 'release.tar', size: 30 },
      { file: '/x', name: 'rootfiles/x', size: 1 },
    ]);
    expect(list.at(-1)).to.equal(undefined);
    expect(list.at(4)).to.equal(undefined);
    expect(() => list.add(9, 'y', 1)).to.throw(RangeError);
    expect(() => list.setSize(4, 1)).to.throw(RangeError);
  });
});
