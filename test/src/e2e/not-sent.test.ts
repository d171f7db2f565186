import { execFileSync } from 'node:child_process';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode } from '@relayer/common';
import type { JobEvent } from '@relayer/agent-sender';
import { startAgent } from '../support/agent.js';
import { findExecutable } from '../support/executable.js';
import {
  BIN, closeAll, randomFile, runAsNobody, sha256File, startReceiver, tmpDir, track,
} from '../support/util.js';

type Queued = Extract<JobEvent, { type: 'queued' }>;
type Done = Extract<JobEvent, { type: 'done' }>;
type Failed = Extract<JobEvent, { type: 'failed' }>;

function events(stdout: string): JobEvent[] {
  return stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as JobEvent);
}

const isRoot = process.getuid?.() === 0;

describe('a send tells the whole truth about what it did not send', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  it('a tree with a FIFO, a socket, a device node and a symlink is sent without them, exit 0, each listed with its kind and reason (text and --json)', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const tree = path.join(src, 't');
    await mkdir(tree);
    await writeFile(path.join(tree, 'a'), 'a\n');
    execFileSync(findExecutable('mkfifo')!, [path.join(tree, 'fifo')]);
    const sock = net.createServer();
    await new Promise<void>((resolve) => sock.listen(path.join(tree, 'sock'), resolve));
    track(() => new Promise<void>((resolve) => sock.close(() => resolve())));
    if (isRoot) execFileSync(findExecutable('mknod')!, [path.join(tree, 'dev'), 'c', '1', '3']);
    await symlink('/etc/passwd', path.join(tree, 'link'));
    const expected = [
      ...(isRoot ? [['t/dev', 'character device']] : []), ['t/fifo', 'FIFO'], ['t/link', 'symlink'], ['t/sock', 'socket'],
    ];
    const agent = await startAgent({ receivers: { r1: r.url }, allowRoots: [src] });

    const json = await agent.relay(['send', tree, '--to', 'r1', '--json']);
    expect(json.code, json.stderr).to.equal(0);
    const all = events(json.stdout);
    const queued = all.find((e): e is Queued => e.type === 'queued')!;
    expect(queued.skipped.map((k) => [k.name, k.kind])).to.deep.equal(expected);
    for (const k of queued.skipped) expect(k.reason, k.name).to.match(/not followed|not a regular file/);
    const done = all.find((e): e is Done => e.type === 'done')!;
    expect(done).to.include({ ok: true, confirmed: 1, failed: 0, skipped: expected.length });
    expect(await sha256File(path.join(r.dir, 't', 'a'))).to.equal(await sha256File(path.join(tree, 'a')));

    const text = await agent.relay(['send', tree, '--to', 'r1']);
    expect(text.code, text.stderr).to.equal(0);
    for (const [name, kind] of expected) expect(text.stdout).to.contain(`${name} (${kind})`);
    expect(text.stdout).to.match(new RegExp(`^done: 1 file on r1 \\(1 confirmed\\), .*, ${expected.length} skipped \\(not regular files\\)$`, 'm'));
  });

  it('an unreadable folder fails on its own, named, in words (no system-call text); the rest of the tree arrives; exit 1', async function () {
    if (!isRoot) this.skip(); // it runs relay as uid 65534 so that a chmod 000 folder cannot be read
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    await chmod(src, 0o755);
    const tree = path.join(src, 't');
    await mkdir(path.join(tree, 'locked'), { recursive: true });
    await mkdir(path.join(tree, 'b'));
    const a = await randomFile(tree, 2000, 'a');
    const c = await randomFile(path.join(tree, 'b'), 300_000, 'c');
    await writeFile(path.join(tree, 'locked', 'secret'), 'x');
    for (const p of [tree, path.join(tree, 'b')]) await chmod(p, 0o755);
    for (const p of [a.path, c.path]) await chmod(p, 0o644);
    await chmod(path.join(tree, 'locked'), 0o000);

    const json = await runAsNobody(BIN.relay, ['send', '--direct', '--to', r.url, tree, '--json']);
    expect(json.code, json.stderr).to.equal(1);
    const all = events(json.stdout);
    const failed = all.filter((e): e is Failed => e.type === 'failed');
    expect(failed.map((e) => [e.name, e.code])).to.deep.equal([['t/locked', ErrorCode.IO]]);
    expect(failed[0]!.message).to.contain(path.join(tree, 'locked')).and.to.contain('permission denied');
    expect(failed[0]!.message).to.not.match(/scandir|EACCES/);
    expect(all.filter((e) => e.type === 'received').map((e) => (e as { name: string }).name).sort()).to.deep.equal(['t/a', 't/b/c']);
    expect(await sha256File(path.join(r.dir, 't', 'a'))).to.equal(a.sha256);
    expect(await sha256File(path.join(r.dir, 't', 'b', 'c'))).to.equal(c.sha256);

    const text = await runAsNobody(BIN.relay, ['send', '--direct', '--to', r.url, tree]);
    expect(text.code).to.equal(1);
    expect(text.stdout).to.contain(`FAILED t/locked to ${r.url}: IO: cannot list folder ${path.join(tree, 'locked')}: permission denied`);
    expect(text.stdout).to.match(/^FAILED: 1 failed, 2 confirmed/m);
  });

  it('exits 2 for what the caller typed wrong before anything was sent, 1 when a node refuses or a file cannot be read', async () => {
    const r = await startReceiver({ maxFileSize: 1000 });
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 2000, 'f.bin');
    const agent = await startAgent({ receivers: { r1: r.url }, allowRoots: [src] });
    const cases: Array<[string[], number, string]> = [
      [['send', f.path, '--to', 'nope'], 2, 'UNKNOWN_RECEIVER'],
      [['send', f.path, '--to', 'r1', '--as', '../x'], 2, 'BAD_NAME'],
      [['send', f.path, '--to', 'r1', '--bwlimit', '50Q'], 2, '50Q'],
      [['send', f.path, f.path, '--to', 'r1', '--as', 'x'], 2, 'USAGE'],
      [['send', f.path, '--to', 'r1'], 1, 'TOO_LARGE'],
      [['send', path.join(src, 'missing.bin'), '--to', 'r1'], 1, 'no such file'],
    ];
    for (const [args, code, says] of cases) {
      const res = await agent.relay(args);
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).to.equal(code);
      expect(res.stdout + res.stderr, args.join(' ')).to.contain(says);
    }
  });

  it('echoes a 20,000-character value bounded, elided in the middle (--as, --to, an option argument)', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 10, 'f.bin');
    const agent = await startAgent({ receivers: { r1: r.url }, allowRoots: [src] });
    const long = `${'a'.repeat(10_000)}MIDDLE${'z'.repeat(10_000)}`;
    for (const args of [
      ['send', f.path, '--to', 'r1', '--as', long],
      ['send', f.path, '--to', long],
      ['send', f.path, '--to', 'r1', '--bwlimit', long],
    ]) {
      const res = await agent.relay(args);
      expect(res.code, res.stderr).to.equal(2);
      const said = res.stdout + res.stderr;
      expect(said.length, said.slice(0, 300)).to.be.below(3000);
      expect(said).to.contain('aaaa').and.to.contain('zzzz').and.to.contain('more)');
      expect(said).to.not.contain('MIDDLE');
    }
  });
});
