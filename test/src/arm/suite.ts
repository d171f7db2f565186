/**
 * `npm run test:arm`'s suite, run once per ARM by arm.test.ts (arm64) and armv7.test.ts (mocha runs the two
 * files at once): the agents as ARM processes under qemu-user (prepared by test/arm/prepare.sh), with x64
 * ones on the other end and ARM on both: files arrive byte-identical, a killed ARM receiver resumes, TLS,
 * status and heartbeats. Emulation is 7–40× slower than native: sizes are chosen for it.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readlink, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { armPlatform, runArm, spawnArm, type ArmKind, type ArmPlatform } from '../support/arm.js';
import { startAgent } from '../support/agent.js';
import { FaultProxy } from '../support/proxy.js';
import {
  BIN, closeAll, eventually, freePort, MiB, randomFile, runBin, sha256File, startReceiver, tmpDir, track, type LoggedProcess,
} from '../support/util.js';

interface ArmReceiver {
  process: LoggedProcess;
  url: string;
  port: number;
  dir: string;
}

async function armReceiver(p: ArmPlatform, dir: string, opts: { port?: number; args?: string[] } = {}): Promise<ArmReceiver> {
  const proc = spawnArm(p, 'relay-receiver', ['--host', '127.0.0.1', '--port', String(opts.port ?? 0), '--dir', dir, '--min-free', '0', ...(opts.args ?? [])]);
  const listening = await proc.waitLog('receiver listening', () => true, 120_000);
  const port = listening.port as number;
  return { process: proc, url: `${opts.args?.includes('--tls-cert') ? 'https' : 'http'}://127.0.0.1:${port}`, port, dir };
}

/** An ARM sender agent and `relay` run as ARM against it. */
async function armAgent(p: ArmPlatform, receivers: Record<string, string>, allowRoot: string, extra: string[] = []): Promise<{ relay: (args: string[]) => ReturnType<typeof runArm>; process: LoggedProcess }> {
  const socket = path.join(await tmpDir('relay-arm-agent-'), 'agent.sock');
  const proc = spawnArm(p, 'relay-sender', [
    '--socket', socket, '--heartbeat', '500ms', '--log-level', 'debug', '--allow-root', allowRoot,
    ...Object.entries(receivers).flatMap(([n, u]) => ['--receiver', `${n}=${u}`]), ...extra,
  ]);
  await proc.waitLog('sender agent started', () => true, 120_000);
  return { process: proc, relay: (args) => runArm(p, 'relay', args, { RELAY_SOCKET: socket }) };
}

/** A 500-file tree of small files under `dir/tree`. */
async function tree(dir: string): Promise<string> {
  const root = path.join(dir, 'tree');
  for (let i = 0; i < 500; i++) {
    const sub = path.join(root, `d${i % 10}`);
    if (i < 10) await mkdir(sub, { recursive: true });
    await writeFile(path.join(sub, `f${i}.txt`), `file ${i} ${'x'.repeat(i)}\n`);
  }
  return root;
}

async function sameTree(a: string, b: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const rel = path.join(`d${i % 10}`, `f${i}.txt`);
    expect(await sha256File(path.join(b, rel)), rel).to.equal(await sha256File(path.join(a, rel)));
  }
}

/** The suite on that ARM, under the title given. */
export function armSuite(kind: ArmKind, title: string): void {
  describe(title, function () {
    this.timeout(300_000);
    const p = armPlatform(kind);
    before(function () {
      if (!p) throw new Error(`test/arm/prepare.sh has not run for ${kind} (npm run test:arm runs it first)`);
    });
    afterEach(closeAll);

    it('ARM receiver ← x64 agent: a 64 MiB file and a 500-file tree arrive byte-identical; relay status sees it connected', async () => {
      const r = await armReceiver(p!, await tmpDir('relay-arm-inbox-'));
      // The process really is that ARM's Node under qemu (the bin's #! line and `exec node` kept it there).
      expect(await readlink(`/proc/${r.process.pid}/exe`)).to.match(p!.qemu);
      expect(execFileSync(path.join(p!.nodeBin, 'node'), ['-p', 'process.arch'], { encoding: 'utf8' }).trim()).to.equal(p!.arch);
      const src = await tmpDir('relay-src-');
      const f = await randomFile(src, 64 * MiB, 'big.bin');
      const t = await tree(src);
      const agent = await startAgent({ receivers: { pi: r.url }, allowRoots: [src] });
      await agent.waitLog('receiver connected', (l) => l.receiver === 'pi', 60_000);
      const status = await agent.relay(['status']);
      expect(status.code, status.stdout + status.stderr).to.equal(0);
      expect(status.stdout).to.match(/^pi +connected +\d+ms/m);
      const res = await agent.relay(['send', f.path, t, '--to', 'pi', '--timeout', '2m']);
      expect(res.code, res.stdout + res.stderr).to.equal(0);
      expect(await sha256File(path.join(r.dir, 'big.bin'))).to.equal(f.sha256);
      await sameTree(t, path.join(r.dir, 'tree'));
    });

    it('x64 receiver ← ARM agent and ARM relay: the same file and tree arrive byte-identical', async () => {
      const r = await startReceiver();
      const src = await tmpDir('relay-src-');
      const f = await randomFile(src, 64 * MiB, 'big.bin');
      const t = await tree(src);
      const agent = await armAgent(p!, { x64: r.url }, src);
      await agent.process.waitLog('receiver connected', () => true, 60_000);
      const res = await agent.relay(['send', f.path, t, '--to', 'x64', '--timeout', '2m']);
      expect(res.code, res.stdout + res.stderr).to.equal(0);
      expect(res.stdout).to.match(/^done: 501 files on x64/m);
      expect(await sha256File(path.join(r.dir, 'big.bin'))).to.equal(f.sha256);
      await sameTree(t, path.join(r.dir, 'tree'));
    });

    it('ARM to ARM, and a kill -9 of the ARM receiver mid-transfer: restarted on the same port and folder, the send resumes', async () => {
      const dir = await tmpDir('relay-arm-inbox-');
      const port = await freePort();
      let r = await armReceiver(p!, dir, { port });
      const src = await tmpDir('relay-src-');
      const f = await randomFile(src, 64 * MiB, 'resume.bin');
      const agent = await armAgent(p!, { pi: r.url }, src);
      await agent.process.waitLog('receiver connected', () => true, 60_000);
      const sending = agent.relay(['send', f.path, '--to', 'pi', '--timeout', '3m', '--bwlimit', '8M', '--json']);
      // Killed once a good part of the file is on its disk.
      const partial = path.join(dir, '.relay-partial');
      await eventually(async () => {
        const { readdir } = await import('node:fs/promises');
        const parts = (await readdir(partial).catch(() => [])).filter((n) => n.endsWith('.part'));
        return parts.length > 0 && (await stat(path.join(partial, parts[0]!))).size > 16 * MiB;
      }, 'the partial holds 16 MiB', 120_000);
      await r.process.kill('SIGKILL');
      r = await armReceiver(p!, dir, { port });
      const res = await sending;
      expect(res.code, res.stdout + res.stderr).to.equal(0);
      const received = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; resumedFrom?: number }).find((e) => e.type === 'received')!;
      expect(received.resumedFrom, 'resumed, not started over').to.be.greaterThan(0);
      expect(await sha256File(path.join(dir, 'resume.bin'))).to.equal(f.sha256);
    });

    it('TLS: an ARM receiver with a certificate from relay certs; the x64 agent verifies it against the CA', async () => {
      const certs = await tmpDir('relay-arm-tls-');
      const made = await runBin(BIN.relay, ['certs', '--out', certs, '--node', 'pi=localhost,127.0.0.1']);
      expect(made.code, made.stderr).to.equal(0);
      const r = await armReceiver(p!, await tmpDir('relay-arm-inbox-'), { args: ['--tls-cert', path.join(certs, 'pi.crt'), '--tls-key', path.join(certs, 'pi.key')] });
      const src = await tmpDir('relay-src-');
      const f = await randomFile(src, 8 * MiB, 'tls.bin');
      const agent = await startAgent({ receivers: { pi: r.url }, allowRoots: [src], extraArgs: ['--ca', path.join(certs, 'ca.crt')] });
      const res = await agent.relay(['send', f.path, '--to', 'pi', '--timeout', '2m']);
      expect(res.code, res.stdout + res.stderr).to.equal(0);
      expect(await sha256File(path.join(r.dir, 'tls.bin'))).to.equal(f.sha256);
    });

    it('heartbeats: an ARM agent marks an ARM receiver stale when its beats stop answering, connected again when they resume', async () => {
      const r = await armReceiver(p!, await tmpDir('relay-arm-inbox-'));
      const proxy = new FaultProxy(r.port);
      await proxy.start();
      track(() => proxy.close());
      const agent = await armAgent(p!, { pi: proxy.url }, await tmpDir('relay-src-'));
      await agent.process.waitLog('receiver connected', () => true, 60_000);
      proxy.freeze();
      await agent.process.waitLog('receiver stale', () => true, 60_000);
      const status = await agent.relay(['status']);
      expect(status.code, 'status exits 1 while a receiver is not connected').to.equal(1);
      expect(status.stdout).to.match(/^pi +stale/m);
      proxy.thaw();
      await agent.process.waitLog('receiver heartbeats resumed', () => true, 60_000);
    });
  });
}
