import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { startAgent } from '../support/agent.js';
import { BIN, closeAll, randomFile, runBin, sha256File, startReceiver, tmpDir, track, waitFor, type TestReceiver } from '../support/util.js';

interface StatusJson {
  receivers: { name: string; url: string; state: string; rttMs: number | null; node: string | null; freeBytes: number | null }[];
  transfers: { name: string; receiver: string; acked: number; size: number }[];
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(path.join(dir, e.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

describe('sender agent: relay-sender + relay over the control socket', function () {
  this.timeout(90_000);
  afterEach(closeAll);

  let a: TestReceiver;
  let b: TestReceiver;
  let src: string;
  beforeEach(async () => {
    a = await startReceiver();
    b = await startReceiver();
    src = await tmpDir('relay-src-');
  });

  it('relay status shows both receivers connected, with RTT, node name and free disk', async () => {
    const agent = await startAgent({ receivers: { a: a.url, b: b.url }, allowRoots: [src] });
    await agent.waitLog('heartbeat', (l) => l.receiver === 'a');
    await agent.waitLog('heartbeat', (l) => l.receiver === 'b');
    const res = await agent.relay(['status', '--json']);
    expect(res.code).to.equal(0);
    const status = JSON.parse(res.stdout) as StatusJson;
    expect(status.receivers.map((r) => [r.name, r.url, r.state])).to.deep.equal([['a', a.url, 'connected'], ['b', b.url, 'connected']]);
    for (const r of status.receivers) {
      expect(r.rttMs).to.be.a('number');
      expect(r.node).to.be.a('string');
      expect(r.freeBytes).to.be.greaterThan(0);
    }
    expect(status.transfers).to.deep.equal([]);
    const text = await agent.relay(['status']);
    expect(text.code).to.equal(0);
    expect(text.stdout).to.match(/^a\s+connected/m).and.to.match(/^b\s+connected/m);
  });

  it('fans one file out to both receivers and exits 0 with one confirmation per target', async () => {
    const f = await randomFile(src, 5 * 1024 * 1024 + 3, 'app.tar');
    const agent = await startAgent({ receivers: { a: a.url, b: b.url }, allowRoots: [src] });
    const res = await agent.relay(['send', f.path, '--to', 'all']);
    expect(res.code, res.stderr).to.equal(0);
    for (const target of ['a', 'b']) expect(res.stdout).to.contain(`received app.tar ${f.size} bytes sha256=${f.sha256} on ${target}`);
    expect(await sha256File(path.join(a.dir, 'app.tar'))).to.equal(f.sha256);
    expect(await sha256File(path.join(b.dir, 'app.tar'))).to.equal(f.sha256);
  });

  it('sends a directory of 200 files as its tree, one confirmation each and a summary', async () => {
    const tree = path.join(src, 'site');
    const made = [];
    for (let i = 0; i < 200; i++) made.push(await randomFile(tree, (i * 997) % 5000, `d${i % 7}/f${i}.bin`));
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src] });
    const res = await agent.relay(['send', tree, '--to', 'a', '--json']);
    expect(res.code, res.stderr).to.equal(0);
    const events = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; ok?: boolean; confirmed?: number });
    expect(events.filter((e) => e.type === 'received')).to.have.length(200);
    expect(events.at(-1)).to.include({ type: 'done', ok: true, confirmed: 200 });
    expect(await listFiles(path.join(a.dir, 'site'))).to.deep.equal(await listFiles(tree));
    for (const f of made) expect(await sha256File(path.join(a.dir, 'site', path.relative(tree, f.path)))).to.equal(f.sha256);
  });

  it('answers with several events per message, one JSON per line, and refuses a malformed request with PROTOCOL', async () => {
    const tree = path.join(src, 'many');
    for (let i = 0; i < 150; i++) await randomFile(tree, 100, `f${i}.bin`);
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src] });
    const { WebSocket } = await import('ws');
    const run = async (request: Record<string, unknown>): Promise<string[]> => {
      const ws = new WebSocket(`ws+unix://${agent.socketPath}:/control`);
      track(() => ws.terminate());
      await waitFor(ws, 'open');
      const messages: string[] = [];
      ws.on('message', (m) => messages.push(String(m)));
      const closed = waitFor(ws, 'close');
      ws.send(JSON.stringify(request));
      await closed;
      return messages;
    };
    const kinds = (lines: string[]): Record<string, number> => {
      const n: Record<string, number> = {};
      for (const l of lines) {
        const t = (JSON.parse(l) as { type: string }).type;
        n[t] = (n[t] ?? 0) + 1;
      }
      return n;
    };
    const expected = { queued: 1, target: 1, start: 150, received: 150, done: 1 };

    const batched = await run({ type: 'send', paths: [tree], as: 'two', to: ['a'], transfer: {} });
    const lines = batched.flatMap((m) => m.split('\n'));
    expect(kinds(lines)).to.deep.equal(expected);
    expect(batched.length).to.be.lessThan(lines.length);
    expect((JSON.parse(lines.at(-1)!) as { type: string; ok: boolean }).ok).to.equal(true);

    const bad = await run({ type: 'send', paths: 'not a list', to: ['a'], transfer: {} });
    expect(JSON.parse(bad[0]!)).to.include({ type: 'error', code: 'PROTOCOL' });
  });

  it('refuses a file outside every --allow-root (exit 1, NOT_ALLOWED), also through a symlink', async () => {
    const outside = await tmpDir('relay-outside-');
    const secret = await randomFile(outside, 100, 'secret');
    const { symlink } = await import('node:fs/promises');
    await symlink(secret.path, path.join(src, 'innocent'));
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src] });
    for (const p of [secret.path, path.join(src, 'innocent'), '/etc/hostname']) {
      const res = await agent.relay(['send', p, '--to', 'a']);
      expect(res.code, p).to.equal(1);
      expect(res.stderr).to.contain('NOT_ALLOWED');
    }
    expect(await readdir(a.dir)).to.deep.equal(['.relay-partial']);
    expect(await readdir(path.join(a.dir, '.relay-partial'))).to.deep.equal([]);
  });

  it('marks a stopped receiver disconnected, reconnects when it returns, and a send started meanwhile completes', async () => {
    const f = await randomFile(src, 2 * 1024 * 1024, 'late.bin');
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src], heartbeat: '100ms' });
    await agent.waitLog('receiver connected', (l) => l.receiver === 'a');
    const { port } = a.address();
    await a.close();
    await agent.waitLog('receiver disconnected', (l) => l.receiver === 'a');
    const down = JSON.parse((await agent.relay(['status', '--json'])).stdout) as StatusJson;
    expect(down.receivers[0]!.state).to.equal('disconnected');

    const sending = agent.relay(['send', f.path, '--to', 'a', '--timeout', '60s']);
    await agent.waitLog('job started');
    const back = await startReceiver({ port, dir: a.dir });
    await agent.waitLog('receiver reconnected', (l) => l.receiver === 'a');
    const res = await sending;
    expect(res.code, res.stderr).to.equal(0);
    expect(await sha256File(path.join(back.dir, 'late.bin'))).to.equal(f.sha256);
    const up = JSON.parse((await agent.relay(['status', '--json'])).stdout) as StatusJson;
    expect(up.receivers[0]!.state).to.equal('connected');
  });

  it('relay status: no stale RTT or free space for a receiver that went away, its last error shown, exit 1 while any receiver is down', async () => {
    const b = await startReceiver();
    const agent = await startAgent({ receivers: { a: a.url, b: b.url }, allowRoots: [src], heartbeat: '100ms' });
    await Promise.all(['a', 'b'].map((n) => agent.waitLog('receiver connected', (l) => l.receiver === n)));
    const up = await agent.relay(['status']);
    expect(up.code, up.stdout + up.stderr).to.equal(0);
    expect(up.stdout.split('\n')[0]).to.match(/^RECEIVER +STATE +RTT +LAST BEAT +NODE +FREE +URL +LAST ERROR$/);
    await b.close();
    await agent.waitLog('receiver disconnected', (l) => l.receiver === 'b');
    const down = await agent.relay(['status']);
    expect(down.code, 'a pipeline can gate on it').to.equal(1);
    expect(down.stderr).to.contain('not connected: b');
    const row = down.stdout.split('\n').find((l) => l.startsWith('b '))!;
    const cols = row.split(/ {2,}/);
    expect(cols[1]).to.equal('disconnected');
    expect(cols[2], 'RTT').to.equal('-');
    expect(cols[5], 'FREE').to.equal('-');
    expect(cols[7]).to.match(/^(UNREACHABLE|DISCONNECTED): /);
    const json = JSON.parse((await agent.relay(['status', '--json'])).stdout) as { receivers: Array<{ name: string; rttMs: unknown; freeBytes: unknown }> };
    expect(json.receivers.find((r) => r.name === 'b')).to.include({ rttMs: null, freeBytes: null });
    expect(json.receivers.find((r) => r.name === 'a')!.rttMs).to.be.a('number');
  });

  it('marks a receiver stale after 3 unanswered heartbeats while the TCP connection stays up', async () => {
    const { FaultProxy } = await import('../support/proxy.js');
    const proxy = new FaultProxy(a.address().port);
    await proxy.start();
    track(() => proxy.close());
    const agent = await startAgent({ receivers: { a: proxy.url }, allowRoots: [src], heartbeat: '100ms' });
    await agent.waitLog('receiver connected', (l) => l.receiver === 'a');
    proxy.freeze();
    const [stale] = await agent.waitLog('receiver stale', (l) => l.receiver === 'a');
    expect(String(stale.reason)).to.match(/3 heartbeats unanswered/);
    proxy.thaw();
    await agent.waitLog('receiver heartbeats resumed', (l) => l.receiver === 'a');
  });

  it('cancels the job when the client is killed, keeps the partial, and a re-run resumes', async () => {
    const f = await randomFile(src, 24 * 1024 * 1024, 'big.bin');
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src] });
    const client = spawn(process.execPath, [BIN.relay, 'send', f.path, '--to', 'a', '--json', '--bwlimit', '8M'], {
      env: { ...process.env, RELAY_SOCKET: agent.socketPath }, stdio: ['ignore', 'pipe', 'ignore'],
    });
    track(() => client.kill('SIGKILL'));
    const lines = createInterface({ input: client.stdout! });
    await waitFor<[string]>(lines, 'line', (l) => {
      const e = JSON.parse(l) as { type: string; acked?: number };
      return e.type === 'progress' && (e.acked ?? 0) >= 4 * 1024 * 1024;
    });
    client.kill('SIGKILL');
    await agent.waitLog('job cancelled');
    const partials = await readdir(path.join(a.dir, '.relay-partial'));
    expect(partials.filter((p) => p.endsWith('.part'))).to.have.length(1);
    const held = (await stat(path.join(a.dir, '.relay-partial', partials.find((p) => p.endsWith('.part'))!))).size;
    expect(held).to.be.greaterThan(0).and.lessThan(f.size);

    const rerun = await agent.relay(['send', f.path, '--to', 'a', '--json']);
    expect(rerun.code, rerun.stderr).to.equal(0);
    const received = rerun.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; resumedFrom?: number; bytesSent?: number })
      .find((e) => e.type === 'received')!;
    expect(received.resumedFrom).to.be.greaterThan(0);
    expect(received.bytesSent).to.be.lessThan(f.size);
    expect(await sha256File(path.join(a.dir, 'big.bin'))).to.equal(f.sha256);
    expect(await readdir(path.join(a.dir, '.relay-partial'))).to.deep.equal([]);
  });

  it('relay exits 3 and names the socket path when no agent is running', async () => {
    const missing = path.join(await tmpDir(), 'nobody.sock');
    for (const args of [['status'], ['send', '/etc/hostname', '--to', 'a']]) {
      const res = await runBin(BIN.relay, [...args, '--socket', missing]);
      expect(res.code).to.equal(3);
      expect(res.stderr).to.contain(missing);
    }
  });
});

describe('sender agent: what a socket user cannot make it do', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  it('sends only to configured receivers: an unknown URL is refused and never even connected to', async () => {
    const a = await startReceiver();
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 1000, 'x.bin');
    const { createServer } = await import('node:net');
    let connections = 0;
    const trap = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    track(() => new Promise<void>((resolve) => trap.close(() => resolve())));
    const trapUrl = `http://127.0.0.1:${(trap.address() as { port: number }).port}`;
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src] });

    const refused = await agent.relay(['send', f.path, '--to', trapUrl]);
    expect(refused.code, 'a --to the agent does not know is a usage error').to.equal(2);
    expect(refused.stderr).to.contain('UNKNOWN_RECEIVER').and.to.contain('configured and discovered receivers: a');
    expect(connections).to.equal(0);

    const byUrl = await agent.relay(['send', f.path, '--to', a.url]);
    expect(byUrl.code, byUrl.stderr).to.equal(0);
    expect(await sha256File(path.join(a.dir, 'x.bin'))).to.equal(f.sha256);
  });

  it('refuses transfer options outside their bounds, from the CLI (exit 2) and from a raw control request', async () => {
    const a = await startReceiver();
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 1000, 'x.bin');
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src] });
    const cli = await agent.relay(['send', f.path, '--to', 'a', '--window', '0']);
    expect(cli.code).to.equal(2);

    const { WebSocket } = await import('ws');
    const ws = new WebSocket(`ws+unix://${agent.socketPath}:/control`);
    track(() => ws.terminate());
    await waitFor(ws, 'open');
    const reply = waitFor<[Buffer]>(ws, 'message');
    ws.send(JSON.stringify({ type: 'send', paths: [f.path], to: ['a'], transfer: { ackTimeoutMs: 0 } }));
    const [msg] = await reply;
    expect(JSON.parse(String(msg))).to.include({ type: 'error', code: 'USAGE' });
    expect(await readdir(a.dir)).to.deep.equal(['.relay-partial']);
  });

  it('fails a job at once with AUTH when the receiver refuses the agent\'s token (no waiting out --timeout)', async () => {
    const a = await startReceiver();
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 1000, 'x.bin');
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src], token: 'not-the-token' });
    await agent.waitLog('receiver refused the token');
    const res = await agent.relay(['send', f.path, '--to', 'a', '--timeout', '10m']);
    expect(res.code).to.equal(1);
    expect(res.stdout).to.contain('AUTH');
    const status = JSON.parse((await agent.relay(['status', '--json'])).stdout) as { receivers: { state: string; lastError: { code: string } | null }[] };
    expect(status.receivers[0]!.state).to.equal('disconnected');
    expect(status.receivers[0]!.lastError?.code).to.equal('AUTH');
  });

  it('exits 1 when a directory holds nothing to send, and names the symlinks it did not follow', async () => {
    const a = await startReceiver();
    const src = await tmpDir('relay-src-');
    const { mkdir, symlink } = await import('node:fs/promises');
    await mkdir(path.join(src, 'empty'));
    await mkdir(path.join(src, 'links'));
    await symlink('/etc/hostname', path.join(src, 'links', 'h'));
    const agent = await startAgent({ receivers: { a: a.url }, allowRoots: [src] });
    for (const dir of ['empty', 'links']) {
      const res = await agent.relay(['send', path.join(src, dir), '--to', 'a']);
      expect(res.code, dir).to.equal(1);
      expect(res.stderr).to.contain('nothing to send');
    }
    const f = await randomFile(path.join(src, 'links'), 10, 'real.bin');
    const mixed = await agent.relay(['send', path.join(src, 'links'), '--to', 'a']);
    expect(mixed.code, mixed.stderr).to.equal(0);
    expect(mixed.stdout).to.contain('skipped 1 symlink (not regular files, not sent): links/h (symlink)');
    expect(await sha256File(path.join(a.dir, 'links', 'real.bin'))).to.equal(f.sha256);
  });
});
