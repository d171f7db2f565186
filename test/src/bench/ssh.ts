/**
 * scp and rsync over ssh through a throwaway sshd on 127.0.0.1 (generated host and client keys, this
 * user, no PAM). Absent when sshd, scp or rsync is not installed (Debian: openssh-server, rsync).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { findExecutable } from '../support/executable.js';
import { Daemon } from './proc.js';

const run = promisify(execFile);

export interface Ssh {
  sshd: Daemon;
  /** Copies one file; undefined when scp is not installed. */
  scp?: (file: string, dest: string) => Promise<void>;
  /** rsync -a of a folder's contents into dest; undefined when rsync is not installed. */
  rsync?: (srcDir: string, dest: string) => Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Returns a reason string when ssh cannot be used here. */
export async function startSsh(work: string): Promise<Ssh | string> {
  const sshd = findExecutable('sshd');
  const tools = { ssh: findExecutable('ssh'), scp: findExecutable('scp'), rsync: findExecutable('rsync') };
  if (!sshd || !tools.ssh) return 'not installed (apt-get install openssh-server)';
  const dir = path.join(work, 'ssh');
  await mkdir(dir, { mode: 0o700 });
  await mkdir('/run/sshd', { recursive: true });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host')]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client')]);
  await writeFile(path.join(dir, 'authorized_keys'), await readFile(path.join(dir, 'client.pub')), { mode: 0o600 });
  const port = await freePort();
  await writeFile(path.join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${dir}/host`, `AuthorizedKeysFile ${dir}/authorized_keys`,
    `PidFile ${dir}/sshd.pid`, 'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no',
    'Subsystem sftp /usr/lib/openssh/sftp-server',
  ].join('\n') + '\n');
  const child = spawn(sshd, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('sshd did not start')), 10_000);
    child.once('exit', (code) => reject(new Error(`sshd exited with ${String(code)}`)));
    createInterface({ input: child.stderr! }).on('line', (l) => {
      if (/Server listening/.test(l)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const user = os.userInfo().username;
  const sshOpts = ['-i', path.join(dir, 'client'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
  const big = { maxBuffer: 16 * 1024 * 1024 };
  return {
    sshd: new Daemon('sshd', child, {}),
    scp: tools.scp ? async (file, dest) => {
      await run(tools.scp!, ['-q', '-P', String(port), ...sshOpts, file, `${user}@127.0.0.1:${dest}`], big);
    } : undefined,
    rsync: tools.rsync ? async (srcDir, dest) => {
      await run(tools.rsync!, ['-a', '-e', [tools.ssh, '-p', String(port), ...sshOpts].join(' '), `${srcDir}/`, `${user}@127.0.0.1:${dest}/`], big);
    } : undefined,
  };
}
