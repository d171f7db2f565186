import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { checkSocketTrust, defaultSocketDir, defaultSocketPath, prepareSocketPath, trustedOwners } from '@relayer/agent-sender';
import { closeAll, expectRejectsCode, tmpDir } from '../support/util.js';

describe('socket trust: where the control socket lives and when it is trusted', () => {
  afterEach(closeAll);

  it('defaults to $XDG_RUNTIME_DIR/relay, else /run/relay for root, else a per-uid folder in the temp folder', () => {
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' })).to.equal('/run/user/1000/relay/relay-sender.sock');
    const uid = process.getuid!();
    expect(defaultSocketDir({})).to.equal(uid === 0 ? '/run/relay' : path.join(os.tmpdir(), `relay-${uid}`));
  });

  it('the agent refuses a folder writable by everyone (without the sticky bit) and a folder that is not a directory', async () => {
    const open = await tmpDir('relay-open-');
    await chmod(open, 0o777);
    const err = await expectRejectsCode(prepareSocketPath(path.join(open, 's.sock')), 'USAGE');
    expect(err.message).to.contain('writable by everyone');
    const base = await tmpDir('relay-file-');
    await writeFile(path.join(base, 'notadir'), 'x');
    await expectRejectsCode(prepareSocketPath(path.join(base, 'notadir', 's.sock')), 'USAGE');
  });

  it('relay refuses a symlinked socket path, a non-socket, and a folder writable by everyone', async () => {
    const dir = await tmpDir('relay-trust-');
    await writeFile(path.join(dir, 'plain'), 'x');
    await symlink(path.join(dir, 'plain'), path.join(dir, 'link.sock'));
    const owners = trustedOwners(undefined);
    await expectRejectsCode(checkSocketTrust(path.join(dir, 'link.sock'), owners), 'UNREACHABLE');
    await expectRejectsCode(checkSocketTrust(path.join(dir, 'plain'), owners), 'UNREACHABLE');
    const open = path.join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o777);
    const err = await expectRejectsCode(checkSocketTrust(path.join(open, 'relay-sender.sock'), owners), 'UNREACHABLE');
    expect(err.message).to.contain('writable by everyone');
  });

  it('trusts root, the caller and a named agent user (by uid or name)', () => {
    expect(trustedOwners(undefined)).to.include(0).and.include(process.getuid!());
    expect(trustedOwners('65534')).to.include(65534);
    expect(trustedOwners('root')).to.include(0);
  });

  it('trusts the owner of a folder nobody else could have made (its parent is not writable by everyone), not one made in /tmp', async () => {
    const { default: net } = await import('node:net');
    const { chown } = await import('node:fs/promises');
    const check = async (parentMode: number): Promise<unknown> => {
      const parent = await tmpDir('relay-parent-');
      await chmod(parent, parentMode);
      const folder = path.join(parent, 'run');
      await mkdir(folder, { mode: 0o770 });
      const sock = path.join(folder, 'relay-sender.sock');
      const srv = net.createServer();
      await new Promise<void>((resolve) => srv.listen(sock, resolve));
      try {
        await chown(folder, 65534, 65534);
        await chown(sock, 65534, 65534);
        return await checkSocketTrust(sock, [0, 4242]).then(() => 'trusted', (e: Error) => e.message);
      } finally {
        await new Promise((resolve) => srv.close(resolve));
      }
    };
    expect(await check(0o755)).to.equal('trusted');
    expect(await check(0o1777)).to.contain('belongs to uid 65534');
  });
});
