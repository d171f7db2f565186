import { expect } from 'chai';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode } from '@relayer/common';
import { expandSources, FileList } from '@relayer/agent-sender';
import { expectRejectsCode, tmpDir } from '../support/util.js';

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
    expect(skipped).to.deep.equal(['site/b/link']);
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

  it('refuses two files whose names read the same (names that are not UTF-8 both read as U+FFFD)', async () => {
    const root = await tmpDir('relay-src-');
    await mkdir(path.join(root, 'raw'));
    for (const last of [0xfe, 0xff]) await writeFile(Buffer.concat([Buffer.from(path.join(root, 'raw', 'a')), Buffer.from([last])]), 'x');
    const err = await expectRejectsCode(expandSources([path.join(root, 'raw')]), ErrorCode.USAGE);
    expect(err.message).to.contain('two files would arrive as raw/a\uFFFD');
  });

  it('refuses a tree with nothing to send, and a name the receiver would refuse', async () => {
    const root = await tmpDir('relay-src-');
    await mkdir(path.join(root, 'empty', 'sub'), { recursive: true });
    await expectRejectsCode(expandSources([path.join(root, 'empty')]), ErrorCode.SOURCE);
    await mkdir(path.join(root, 'odd'));
    await writeFile(path.join(root, 'odd', 'bad\\name'), 'x');
    await expectRejectsCode(expandSources([path.join(root, 'odd')]), ErrorCode.BAD_NAME);
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
