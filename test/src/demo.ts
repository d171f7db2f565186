/**
 * `npm run demo`: the whole product on loopback. Starts a receiver and a sender agent with a generated
 * token in temp folders, sends a generated 256 MiB file through `relay send` (progress bar on a TTY),
 * checks the confirmation against the file on disk, shows `relay status`, and shuts everything down.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { launchFlags } from './support/launch-flags.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = (name: string): string => path.join(ROOT, 'node_modules/.bin', name);
const SIZE = Number(process.env.DEMO_SIZE_MB ?? 256) * 1024 * 1024;
const children: ChildProcess[] = [];

/** SGR colour only on a terminal, and never with NO_COLOR set (https://no-color.org). */
const COLOUR = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
function paint(sgr: string, text: string): string {
  return COLOUR ? `\x1b[${sgr}m${text}\x1b[0m` : text;
}

function say(s: string): void {
  process.stdout.write(`\n${paint('1', `== ${s}`)}\n`);
}

/** Starts a bin whose JSON logs go to a file-like buffer; resolves with the first log line matching `ready`. */
function startDaemon(name: string, args: string[], env: NodeJS.ProcessEnv, ready: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  // As `npx <name>` would run it: with the Node flags it starts itself with.
  const child = spawn(process.execPath, [...launchFlags(bin(name)), bin(name), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 15s`)), 15_000);
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    createInterface({ input: child.stderr! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return void process.stderr.write(`${name}: ${line}\n`);
      }
      if (Number(entry.level) >= 40) process.stderr.write(`${name}: ${String(entry.msg)}\n`);
      if (ready(entry)) {
        clearTimeout(timer);
        resolve(entry);
      }
    });
  });
}

function run(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    // As `npx <name>` would run it: with the Node flags it starts itself with.
  const child = spawn(process.execPath, [...launchFlags(bin(name)), bin(name), ...args], { env: { ...process.env, ...env }, stdio: 'inherit' });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

async function makeFile(file: string, size: number): Promise<string> {
  const fh = await open(file, 'w');
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  for (let pos = 0; pos < size; pos += buf.length) {
    const piece = buf.subarray(0, Math.min(buf.length, size - pos));
    randomFillSync(piece);
    hash.update(piece);
    await fh.write(piece, 0, piece.length, pos);
  }
  await fh.close();
  return hash.digest('hex');
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(file)) hash.update(c as Buffer);
  return hash.digest('hex');
}

async function main(): Promise<number> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'relay-demo-'));
  const [src, inbox, socket, tokenFile] = ['jenkins-workspace', 'node-inbox', 'relay-sender.sock', 'token'].map((p) => path.join(work, p)) as [string, string, string, string];
  try {
    await writeFile(tokenFile, randomBytes(24).toString('base64url'), { mode: 0o600 });
    await mkdir(src);

    say('1. receiver agent (one per node) on 127.0.0.1, random port');
    const listening = await startDaemon('relay-receiver', ['--host', '127.0.0.1', '--port', '0', '--dir', inbox, '--token-file', tokenFile, '--min-free', '64M'], {},
      (l) => l.msg === 'receiver listening');
    const url = `http://127.0.0.1:${String(listening.port)}`;
    console.log(`   listening at ${url}, publishing into ${inbox}`);

    say('2. sender agent (beside Jenkins) with a control socket');
    const agentReady = startDaemon('relay-sender', ['--socket', socket, '--receiver', `node1=${url}`, '--allow-root', src, '--token-file', tokenFile, '--heartbeat', '1s'], {},
      (l) => l.msg === 'receiver connected');
    await agentReady;
    console.log(`   socket ${socket}, connected to node1`);

    say(`3. a build artifact: ${SIZE / 1024 / 1024} MiB of random bytes`);
    const artifact = path.join(src, 'artifact.bin');
    const expected = await makeFile(artifact, SIZE);
    console.log(`   sha256 ${expected}`);

    say('4. the Jenkins step: relay send artifact.bin --to node1');
    const code = await run('relay', ['send', artifact, '--to', 'node1', '--as', 'builds/artifact.bin', '--socket', socket], {});
    console.log(`   exit code ${code}`);

    say('5. relay status');
    await run('relay', ['status', '--socket', socket], {});

    say('6. check the published file');
    const got = await sha256(path.join(inbox, 'builds/artifact.bin'));
    const ok = code === 0 && got === expected;
    console.log(`   ${path.join(inbox, 'builds/artifact.bin')} sha256 ${got}`);
    console.log(ok ? `\n${paint('32', 'demo OK: confirmed and byte-identical')}` : `\n${paint('31', 'demo FAILED')}`);
    return ok ? 0 : 1;
  } finally {
    say('shutting down');
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.removeAllListeners('exit');
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    })));
    await rm(work, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(`demo failed: ${(err as Error).message}`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
});
