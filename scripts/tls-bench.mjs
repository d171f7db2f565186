#!/usr/bin/env node
// Plain ws vs TLS (wss) side by side: the same file, loopback, interleaved rounds, median wall time of a
// confirmed send (fsynced on the receiver), and the CPU time it took (sender and receiver both run in this
// process, so CPU seconds are the steadier figure on a shared, loaded machine). Run after `npm ci` (it uses the built packages):
//   TLS_BENCH_MB=256 TLS_BENCH_ROUNDS=3 node scripts/tls-bench.mjs
// With an sshd installed (openssh-server), scp -c aes128-gcm@openssh.com joins as the encrypted reference
// (a throwaway sshd on 127.0.0.1 with generated keys; scp does not fsync, which favours it). TLS_BENCH_SCP=0 leaves it out.
import { execFile, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import path from 'node:path';
import { pino } from 'pino';
import { Receiver } from '@relayer/agent-receiver';
import { makeCerts, parseCertNode, sendDirect } from '@relayer/agent-sender';
import { findExecutable } from '../test/dist/support/executable.js';

const MB = Number(process.env.TLS_BENCH_MB ?? 256);
const ROUNDS = Number(process.env.TLS_BENCH_ROUNDS ?? 3);
const TOKEN = 'bench-token';
const log = pino({ level: 'silent' });
const run = promisify(execFile);

/** A throwaway sshd on 127.0.0.1; returns an scp(file, dest) with aes128-gcm, and a stop(). */
async function startSshd(work) {
  const sshdBin = findExecutable('sshd');
  if (process.env.TLS_BENCH_SCP === '0' || !sshdBin) return undefined;
  const dir = path.join(work, 'ssh');
  await mkdir(dir, { mode: 0o700 });
  await mkdir('/run/sshd', { recursive: true });
  for (const k of ['host', 'client']) await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, k)]);
  await writeFile(path.join(dir, 'authorized_keys'), await readFile(path.join(dir, 'client.pub')), { mode: 0o600 });
  const port = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
  await writeFile(path.join(dir, 'sshd_config'), [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${dir}/host`,
    `AuthorizedKeysFile ${dir}/authorized_keys`, `PidFile ${dir}/sshd.pid`, 'PermitRootLogin prohibit-password', 'StrictModes no',
    'UsePAM no', 'PasswordAuthentication no', 'Subsystem sftp /usr/lib/openssh/sftp-server'].join('\n') + '\n');
  const sshd = spawn(sshdBin, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('sshd did not start')), 10_000);
    createInterface({ input: sshd.stderr }).on('line', (l) => {
      if (/Server listening/.test(l)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const user = os.userInfo().username;
  return {
    scp: (file, dest) => run('scp', ['-q', '-c', 'aes128-gcm@openssh.com', '-P', String(port), '-i', path.join(dir, 'client'),
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
      file, `${user}@127.0.0.1:${dest}`]),
    stop: () => sshd.kill('SIGTERM'),
  };
}
const work = await mkdtemp(path.join(os.tmpdir(), 'relay-tls-bench-'));
try {
  const file = path.join(work, 'payload.bin');
  const fh = await open(file, 'w');
  const buf = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < MB; i++) await fh.write(randomFillSync(buf));
  await fh.close();
  const pki = await makeCerts({ out: path.join(work, 'pki'), nodes: [parseCertNode('local=127.0.0.1')] });
  const ca = await readFile(pki.ca.cert);
  const tls = { cert: await readFile(pki.nodes[0].cert), key: await readFile(pki.nodes[0].key) };
  const start = async (name, extra) => {
    const r = new Receiver({ host: '127.0.0.1', port: 0, token: TOKEN, minFree: 0, dir: path.join(work, name), logger: log, ...extra });
    await r.start();
    return r;
  };
  const plain = await start('plain', {});
  const secure = await start('tls', { tls });
  const ssh = await startSshd(work).catch((err) => {
    console.log(`(scp left out: ${err.message})`);
    return undefined;
  });
  // The throwaway sshd must not outlive this script, whatever happens.
  process.once('exit', () => ssh?.stop());
  const times = { plain: [], tls: [], scp: [] };
  const cpu = { plain: [], tls: [], scp: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [label, r] of [['plain', plain], ['tls', secure]]) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      const ok = await sendDirect({ paths: [file], as: `r${round}.bin`, urls: [r.url], token: TOKEN, ca, transfer: {}, logger: log }, () => undefined);
      if (!ok) throw new Error(`${label} send failed`);
      times[label].push(Number(process.hrtime.bigint() - t0) / 1e9);
      const c = process.cpuUsage(c0);
      cpu[label].push((c.user + c.system) / 1e6);
    }
    if (ssh) {
      const t0 = process.hrtime.bigint();
      await ssh.scp(file, path.join(work, `scp-${round}.bin`));
      times.scp.push(Number(process.hrtime.bigint() - t0) / 1e9);
      await rm(path.join(work, `scp-${round}.bin`), { force: true });
    }
  }
  ssh?.stop();
  await plain.close();
  await secure.close();
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`${MB} MiB, ${ROUNDS} rounds, loopback, default chunk/window, ${os.cpus().length} cores`);
  for (const label of ['plain', 'tls', ...(ssh ? ['scp'] : [])]) {
    const m = median(times[label]);
    const c = label === 'scp' ? 'cpu (other processes)' : `cpu ${median(cpu[label]).toFixed(2)} s`;
    console.log(`${label.padEnd(5)} median ${m.toFixed(2)} s  ${(MB / m).toFixed(0)} MiB/s  ${c}  (wall: ${times[label].map((t) => t.toFixed(2)).join(', ')})`);
  }
  if (ssh) console.log(`relay over TLS vs scp aes128-gcm: ${(median(times.scp) / median(times.tls)).toFixed(2)}x the speed`);
  console.log(`TLS/plain: wall ${(median(times.tls) / median(times.plain)).toFixed(2)}x, cpu ${(median(cpu.tls) / median(cpu.plain)).toFixed(2)}x`);
} finally {
  await rm(work, { recursive: true, force: true });
}
