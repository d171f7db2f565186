import { expect } from 'chai';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AllowRoots, checkAllowed, openAllowed } from '@relayer/agent-sender';
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
    const fh = await openAllowed(path.join(root, 'x', 'f'), await AllowRoots.resolve([root]));
    expect((await fh.readFile()).toString()).to.equal('inside');
    await fh.close();
    await expectRejectsCode(openAllowed(path.join(outside, 'f'), await AllowRoots.resolve([root])), 'NOT_ALLOWED');
    await expectRejectsCode(openAllowed(path.join(root, 'x', 'f'), await AllowRoots.resolve([])), 'NOT_ALLOWED');
  });

  it('checks the opened descriptor: a folder swapped for a symlink after an earlier check cannot redirect the read', async () => {
    const target = path.join(root, 'x', 'f');
    const roots = await AllowRoots.resolve([root]);
    expect(await checkAllowed(target, roots)).to.be.a('string');
    await rename(path.join(root, 'x'), path.join(root, 'x.old'));
    await symlink(outside, path.join(root, 'x'));
    await expectRejectsCode(checkAllowed(target, roots), 'NOT_ALLOWED');
    await expectRejectsCode(openAllowed(target, roots), 'NOT_ALLOWED');
  });

  it('does not block on a FIFO put where a file was expected', async () => {
    const { execFileSync } = await import('node:child_process');
    const fifo = path.join(root, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const fh = await openAllowed(fifo, await AllowRoots.resolve([root]));
    expect((await fh.stat()).isFIFO()).to.equal(true);
    await fh.close();
  });

  it('accepts a root given through a symlink', async () => {
    const alias = path.join(await tmpDir('relay-alias-'), 'ws');
    await symlink(root, alias);
    const fh = await openAllowed(path.join(alias, 'x', 'f'), await AllowRoots.resolve([alias]));
    await fh.close();
  });

  it('fixes the roots at start: the root itself swapped for a symlink to / (or another folder) widens nothing', async () => {
    const parent = await tmpDir('relay-parent-');
    const ws = path.join(parent, 'ws');
    await mkdir(ws);
    await writeFile(path.join(ws, 'ok'), 'fine');
    const roots = await AllowRoots.resolve([ws]);
    await rename(ws, path.join(parent, 'ws.old'));
    await symlink('/', ws);
    await expectRejectsCode(openAllowed(path.join(ws, 'etc', 'hostname'), roots), 'NOT_ALLOWED');
    await expectRejectsCode(checkAllowed(path.join(ws, 'etc', 'hostname'), roots), 'NOT_ALLOWED');
    // A real folder put in its place is not the folder recorded at start either.
    await rm(ws);
    await mkdir(ws);
    await writeFile(path.join(ws, 'planted'), 'x');
    await expectRejectsCode(openAllowed(path.join(ws, 'planted'), roots), 'NOT_ALLOWED');
  });

  it('refuses to start with a root that does not exist (USAGE)', async () => {
    await expectRejectsCode(AllowRoots.resolve([path.join(root, 'missing')]), 'USAGE');
  });
});
