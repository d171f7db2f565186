import { expect } from 'chai';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expandSources } from '@relayer/agent-sender';
import { tmpDir } from '../support/util.js';

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

    const { files, skipped } = await expandSources([tree]);
    expect(files.map((f) => f.name)).to.deep.equal(Object.keys(sizes).sort().map((rel) => `site/${rel}`));
    for (const f of files) expect(f.size, f.name).to.equal(sizes[f.name.slice('site/'.length)]);
    expect(files.every((f) => f.file === path.join(root, f.name))).to.equal(true);
    expect(skipped).to.deep.equal(['site/b/link']);
  });
});
