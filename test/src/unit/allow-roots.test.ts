import { expect } from 'chai';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { checkAllowed, openAllowed } from '@relayer/agent-sender';
import { closeAll, expectRejectsCode, tmpDir } from '../support/util.js';

describe('allow-roots: the sender agent reads only files under its roots', () => {
  afterEach(closeAll);

  let root: string;
  let outside: string;
  beforeEach(async () => {
    root = await tmpDir('relay-root-');
    outside = await tmpDir('relay-outside-');
    await mkdir(path.join(root, 'x'));
    await writeFile(path.join(root, 'x', 'f'), 'inside');
    await writeFile(path.join(outside, 'f'), 'TOP SECRET');
  });

  it('opens a file under a root, and refuses one outside every root or with no roots at all', async () => {
    const fh = await openAllowed(path.join(root, 'x', 'f'), [root]);
    expect((await fh.readFile()).toString()).to.equal('inside');
    await fh.close();
    await expectRejectsCode(openAllowed(path.join(outside, 'f'), [root]), 'NOT_ALLOWED');
    await expectRejectsCode(openAllowed(path.join(root, 'x', 'f'), []), 'NOT_ALLOWED');
  });

  it('checks the opened descriptor: a folder swapped for a symlink after an earlier check cannot redirect the read', async () => {
    const target = path.join(root, 'x', 'f');
    expect(await checkAllowed(target, [root])).to.be.a('string');
    await rename(path.join(root, 'x'), path.join(root, 'x.old'));
    await symlink(outside, path.join(root, 'x'));
    await expectRejectsCode(checkAllowed(target, [root]), 'NOT_ALLOWED');
    await expectRejectsCode(openAllowed(target, [root]), 'NOT_ALLOWED');
  });

  it('does not block on a FIFO put where a file was expected', async () => {
    const { execFileSync } = await import('node:child_process');
    const fifo = path.join(root, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const fh = await openAllowed(fifo, [root]);
    expect((await fh.stat()).isFIFO()).to.equal(true);
    await fh.close();
  });

  it('accepts a root given through a symlink', async () => {
    const alias = path.join(await tmpDir('relay-alias-'), 'ws');
    await symlink(root, alias);
    const fh = await openAllowed(path.join(alias, 'x', 'f'), [alias]);
    await fh.close();
  });
});
