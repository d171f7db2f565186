/**
 * `npm run bench`: relay against a plain Node TCP pipe, side by side in one run on loopback, and prints
 * ratios (absolute numbers on a shared machine are noise; ratios within one run are the signal).
 * Every method ends with the file fsynced on the receiving side, as relay does before confirming.
 * scp joins when an sshd is installed (Debian: openssh-server): a throwaway sshd on 127.0.0.1 with
 * generated keys; scp does not fsync, which favours it.
 *   BENCH_SIZE_MB (default 512)  BENCH_ROUNDS (default 3)  BENCH_SCP=0 to leave scp out
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { sendDirect, type TransferOptions } from '@relayer/agent-sender';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SIZE = Number(process.env.BENCH_SIZE_MB ?? 512) * 1024 * 1024;
const ROUNDS = Math.min(Math.max(Number(process.env.BENCH_ROUNDS ?? 3), 1), 20);
const TOKEN = 'bench-token';
const children: ChildProcess[] = [];
const silent = pino({ level: 'silent' });

/** The plain baseline: a TCP server that writes what it gets to a file, fsyncs, then answers one byte. */
const PIPE_SERVER = `
const net = require('node:net'); const fs = require('node:fs');
const dir = process.argv[1]; let n = 0;
const srv = net.createServer({ allowHalfOpen: true }, (s) => {
  const file = dir + '/pipe-' + (n++); const out = fs.createWriteStream(file);
  s.pipe(out);
  out.on('finish', () => { const fd = fs.openSync(file, 'r'); fs.fsyncSync(fd); fs.closeSync(fd); s.end('k'); });
});
srv.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: srv.address().port })));`;

function startChild(args: string[], env: NodeJS.ProcessEnv, ready: (line: Record<string, unknown>) => boolean, stream: 'stdout' | 'stderr'): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start`)), 15_000);
    createInterface({ input: child[stream]! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (ready(entry)) {
          clearTimeout(timer);
          resolve(entry);
        }
      } catch { /* not a JSON line */ }
    });
  });
}

function pipeSend(file: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => createReadStream(file, { highWaterMark: 1024 * 1024 }).pipe(sock));
    sock.once('data', () => {
      sock.destroy();
      resolve();
    });
    sock.once('error', reject);
  });
}

async function relaySend(file: string, url: string, name: string, transfer: Partial<TransferOptions>): Promise<void> {
  const ok = await sendDirect({ paths: [file], as: name, urls: [url], token: TOKEN, transfer, logger: silent }, () => undefined);
  if (!ok) throw new Error('relay send failed');
}

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

/** A throwaway sshd on 127.0.0.1 for the scp comparison; undefined when no sshd is installed. */
async function startSshd(work: string): Promise<((file: string, dest: string) => Promise<void>) | undefined> {
  if (process.env.BENCH_SCP === '0' || !existsSync(SSHD)) return undefined;
  const dir = path.join(work, 'ssh');
  await mkdir(dir, { mode: 0o700 });
  await mkdir('/run/sshd', { recursive: true });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host')]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client')]);
  const { readFile, writeFile } = await import('node:fs/promises');
  await writeFile(path.join(dir, 'authorized_keys'), await readFile(path.join(dir, 'client.pub')), { mode: 0o600 });
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  await writeFile(path.join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${dir}/host`, `AuthorizedKeysFile ${dir}/authorized_keys`,
    `PidFile ${dir}/sshd.pid`, 'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no', 'Subsystem sftp /usr/lib/openssh/sftp-server',
  ].join('\n') + '\n');
  const sshd = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(sshd);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('sshd did not start')), 10_000);
    createInterface({ input: sshd.stderr! }).on('line', (l) => {
      if (/Server listening/.test(l)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const user = os.userInfo().username;
  return async (file, dest) => {
    await run('scp', ['-q', '-P', String(port), '-i', path.join(dir, 'client'), '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', file, `${user}@127.0.0.1:${dest}`]);
  };
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'relay-bench-'));
  try {
    const file = path.join(work, 'payload.bin');
    const fh = await open(file, 'w');
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (let pos = 0; pos < SIZE; pos += buf.length) {
      randomFillSync(buf);
      await fh.write(buf, 0, Math.min(buf.length, SIZE - pos), pos);
    }
    await fh.close();
    await mkdir(path.join(work, 'pipe'));
    const pipe = await startChild(['-e', PIPE_SERVER, path.join(work, 'pipe')], {}, (l) => typeof l.port === 'number', 'stdout');
    const recv = await startChild([path.join(ROOT, 'node_modules/.bin/relay-receiver'), '--host', '127.0.0.1', '--port', '0', '--dir', path.join(work, 'in'), '--min-free', '0'],
      { RELAY_TOKEN: TOKEN }, (l) => l.msg === 'receiver listening', 'stderr');
    const url = `http://127.0.0.1:${String(recv.port)}`;

    const scp = await startSshd(work).catch((err: Error) => {
      console.log(`(scp left out: ${err.message})`);
      return undefined;
    });
    if (!scp) console.log('(scp left out: no sshd installed; apt-get install openssh-server to include it)');
    const methods: [string, (round: number) => Promise<void>][] = [
      ['node net pipe + fsync (baseline)', () => pipeSend(file, pipe.port as number)],
      ['relay (1 MiB chunks, window 8)', (r) => relaySend(file, url, `a${r}`, {})],
      ['relay (1 MiB chunks, window 16)', (r) => relaySend(file, url, `b${r}`, { window: 16 })],
      ['relay (256 KiB chunks, window 1)', (r) => relaySend(file, url, `c${r}`, { chunkSize: 256 * 1024, window: 1 })],
      ...(scp ? [['scp (no fsync)', (r: number) => scp(file, path.join(work, `scp-${r}`))] as [string, (round: number) => Promise<void>]] : []),
    ];
    const times = new Map<string, number[]>(methods.map(([m]) => [m, []]));
    console.log(`bench: ${SIZE / 1024 / 1024} MiB over loopback, ${ROUNDS} rounds, methods interleaved; node ${process.version}, ${os.cpus().length} cpus`);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, run] of methods) {
        const t0 = performance.now();
        await run(r);
        times.get(name)!.push(performance.now() - t0);
      }
      await rm(path.join(work, 'in'), { recursive: true, force: true }).then(() => mkdir(path.join(work, 'in', '.relay-partial'), { recursive: true }));
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const base = median(times.get(methods[0]![0])!);
    console.log(`\n${'method'.padEnd(36)} ${'median'.padStart(9)} ${'MiB/s'.padStart(8)}  vs baseline`);
    for (const [name] of methods) {
      const m = median(times.get(name)!);
      console.log(`${name.padEnd(36)} ${(m / 1000).toFixed(2).padStart(8)}s ${((SIZE / 1024 / 1024) / (m / 1000)).toFixed(0).padStart(8)}  ${(base / m).toFixed(2)}x`);
    }
    if (scp) {
      const ratio = median(times.get('scp (no fsync)')!) / median(times.get(methods[1]![0])!);
      console.log(`\nrelay (default settings) is ${ratio.toFixed(2)}x the speed of scp in this run`);
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
});
