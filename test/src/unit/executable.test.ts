import { expect } from 'chai';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findExecutable } from '../support/executable.js';

describe('findExecutable: the test tools are found as the system finds them, never at a fixed path', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'rly-exe-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('finds an executable in the first PATH folder that has it, by absolute path', async () => {
    await mkdir(path.join(dir, 'a'));
    await mkdir(path.join(dir, 'b'));
    for (const d of ['a', 'b']) {
      await writeFile(path.join(dir, d, 'rly-tool'), '#!/bin/sh\n');
      await chmod(path.join(dir, d, 'rly-tool'), 0o755);
    }
    expect(findExecutable('rly-tool', `${dir}/a:${dir}/b`)).to.equal(path.join(dir, 'a', 'rly-tool'));
    expect(findExecutable('rly-tool', `${dir}/b:${dir}/a`)).to.equal(path.join(dir, 'b', 'rly-tool'));
  });

  it('skips a file that is not executable, a folder of that name and relative PATH entries', async () => {
    await writeFile(path.join(dir, 'rly-plain'), 'data');
    await mkdir(path.join(dir, 'rly-folder'));
    await writeFile(path.join(dir, 'rly-tool'), '#!/bin/sh\n');
    await chmod(path.join(dir, 'rly-tool'), 0o755);
    expect(findExecutable('rly-plain', dir)).to.equal(undefined);
    expect(findExecutable('rly-folder', dir)).to.equal(undefined);
    expect(findExecutable('rly-tool', dir)).to.equal(path.join(dir, 'rly-tool'));
    // A relative PATH entry depends on the working folder: never taken.
    expect(findExecutable('rly-tool', path.relative(process.cwd(), dir))).to.equal(undefined);
  });

  it('looks in the sbin folders when PATH leaves them out (Debian puts ip, sshd and dockerd there)', () => {
    // ip is in iproute2, which every machine here has (the fault suite needs it): /usr/sbin/ip or /sbin/ip.
    const ip = findExecutable('ip', '/nonexistent');
    expect(ip, 'ip from iproute2').to.be.a('string');
    expect(ip).to.match(/^\/(usr\/(local\/)?)?sbin\/ip$/);
  });

  it('returns undefined for a command that is nowhere', () => {
    expect(findExecutable('rly-no-such-command-anywhere', dir)).to.equal(undefined);
  });
});
