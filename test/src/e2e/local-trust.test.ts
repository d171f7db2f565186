import { spawn } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { WebSocketServer } from 'ws';
import { startAgent } from '../support/agent.js';
import { BIN, closeAll, NOBODY, runAsNobody, runBin, startReceiver, tmpDir, TOKEN, track, type CliResult } from '../support/util.js';

/** Starts relay-sender with these args and waits for it to exit (it is expected to refuse to start). */
function agentRefuses(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runBin(BIN.sender, ['--log-level', 'warn', ...args], { env: { RELAY_TOKEN: TOKEN, ...env }, timeoutMs: 20_000 });
}

describe('local trust boundary: allow-roots, the control socket and who may use it', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  it('an allowed root swapped for a symlink to / after start widens nothing: /etc/hostname is refused with NOT_ALLOWED', async () => {
    const r = await startReceiver();
    const parent = await tmpDir('relay-ws-parent-');
    const ws = path.join(parent, 'workspace');
    await mkdir(ws);
    const agent = await startAgent({ receivers: { r: r.url }, allowRoots: [ws] });
    await rename(ws, `${ws}.old`);
    await symlink('/', ws);
    for (const p of [path.join(ws, 'etc', 'hostname'), '/etc/hostname']) {
      const res = await agent.relay(['send', p, '--to', 'r']);
      expect(res.code, `${p}: ${res.stdout}${res.stderr}`).to.equal(1);
      expect(res.stderr).to.contain('NOT_ALLOWED');
    }
    expect(await readFile(path.join(r.dir, 'hostname')).catch(() => 'absent')).to.equal('absent');
  });

  it('--socket naming an existing regular file is refused and the file is left alone', async () => {
    const dir = await tmpDir('relay-sock-');
    const victim = path.join(dir, 'important.txt');
    await writeFile(victim, 'do not delete');
    const res = await agentRefuses(['--socket', victim]);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.contain('is not a socket').and.to.contain(victim);
    expect(await readFile(victim, 'utf8')).to.equal('do not delete');
  });

  it('a symlinked --socket path is refused, and its target is left alone', async () => {
    const dir = await tmpDir('relay-sock-');
    const target = path.join(dir, 'target.txt');
    await writeFile(target, 'keep');
    await symlink(target, path.join(dir, 'agent.sock'));
    const res = await agentRefuses(['--socket', path.join(dir, 'agent.sock')]);
    expect(res.code).to.equal(1);
    expect(res.stderr).to.contain('symlink');
    expect(await readFile(target, 'utf8')).to.equal('keep');
    expect((await lstat(path.join(dir, 'agent.sock'))).isSymbolicLink()).to.equal(true);
  });

  it('a stale socket (nobody listening) is replaced; a live one is not', async () => {
    const dir = await tmpDir('relay-sock-');
    const sock = path.join(dir, 'agent.sock');
    // A socket file whose server is gone: a process that listens and is killed -9 leaves it behind.
    const dead = await runBin('-e', [`require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(dead.signal).to.equal('SIGKILL');
    expect((await lstat(sock)).isSocket()).to.equal(true);
    const agent = await startAgent({ receivers: {}, allowRoots: [dir], extraArgs: ['--socket', sock] });
    const status = await runBin(BIN.relay, ['status', '--json', '--socket', sock]);
    // It answered (an agent with no receivers: status exits 1 and says so).
    expect(status.code, status.stderr).to.equal(1);
    expect(JSON.parse(status.stdout)).to.deep.include({ receivers: [] });
    const second = await agentRefuses(['--socket', sock]);
    expect(second.code).to.equal(1);
    expect(second.stderr).to.contain('already listening');
    await agent.stop();
  });

  it('by default the socket lives in a private folder ($XDG_RUNTIME_DIR/relay, mode 0700) and relay finds it there', async () => {
    const xdg = await tmpDir('relay-xdg-');
    const env = { XDG_RUNTIME_DIR: xdg, RELAY_SOCKET: undefined };
    const r = await startReceiver();
    const child = spawn(process.execPath, [BIN.sender, '--receiver', `r=${r.url}`, '--allow-root', xdg], {
      env: { ...process.env, ...env, RELAY_TOKEN: TOKEN }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    track(async () => {
      child.kill('SIGTERM');
      await exited;
    });
    let err = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        err += d;
        if (err.includes('sender agent started')) resolve();
      });
      void exited.then(() => reject(new Error(`agent exited: ${err}`)));
    });
    const folder = await stat(path.join(xdg, 'relay'));
    expect(folder.mode & 0o777).to.equal(0o700);
    expect((await lstat(path.join(xdg, 'relay', 'relay-sender.sock'))).isSocket()).to.equal(true);
    const res = await runBin(BIN.relay, ['status', '--json'], { env });
    expect(res.code, res.stderr).to.equal(0);
  });

  it('refuses a default socket folder that is a symlink another user could have planted', async () => {
    const xdg = await tmpDir('relay-xdg-');
    const elsewhere = await tmpDir('relay-elsewhere-');
    await symlink(elsewhere, path.join(xdg, 'relay'));
    const res = await agentRefuses([], { XDG_RUNTIME_DIR: xdg, RELAY_SOCKET: undefined });
    expect(res.code).to.equal(1);
    expect(res.stderr).to.contain('symlink');
  });

  it('relay refuses to talk to a socket owned by another user (an impostor answering "all fine")', async () => {
    const dir = await tmpDir('relay-impostor-');
    await chmod(dir, 0o1777); // like /tmp: anyone may create a file there
    const sock = path.join(dir, 'relay-sender.sock');
    const http = createServer();
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (ws) => ws.on('message', () => ws.send(JSON.stringify({ type: 'status', receivers: [], transfers: [] }))));
    await new Promise<void>((resolve) => http.listen(sock, resolve));
    track(() => new Promise((resolve) => http.close(resolve)));
    await chown(sock, NOBODY, NOBODY);
    const res = await runBin(BIN.relay, ['status', '--json', '--socket', sock], { env: { RELAY_AGENT_USER: undefined } });
    expect(res.code, res.stdout).to.equal(3);
    expect(res.stderr).to.contain('not trusting').and.to.contain(`uid ${NOBODY}`);
    expect(res.stdout).to.equal('');
    // Named as the agent's user, the same socket is trusted.
    const named = await runBin(BIN.relay, ['status', '--json', '--socket', sock], { env: { RELAY_AGENT_USER: String(NOBODY) } });
    // It answered (an agent with no receivers: status exits 1 and says so).
    expect(named.code, named.stderr).to.equal(1);
    expect(JSON.parse(named.stdout)).to.deep.include({ receivers: [] });
  });

  it('an agent that may not create its socket exits with one line naming the path and the fix (no stack trace)', async () => {
    const dir = await tmpDir('relay-rootonly-');
    await chmod(dir, 0o755); // root's folder: uid 65534 cannot create anything in it
    const sock = path.join(dir, 'relay-sender.sock');
    const res = await runAsNobody(BIN.sender, ['--socket', sock, '--log-level', 'warn']);
    expect(res.code).to.equal(1);
    const lines = res.stderr.trim().split('\n');
    expect(lines, res.stderr).to.have.length(1);
    expect(lines[0]).to.contain(sock).and.to.contain('permission denied').and.to.contain('install -d');
    expect(res.stderr).to.not.match(/^\s+at /m);
  });

  it('a relay user outside the socket\'s group is told "permission denied" and how to get access, not "is relay-sender running?"', async () => {
    const dir = await tmpDir('relay-grp-');
    await chmod(dir, 0o755);
    const agent = await startAgent({ receivers: {}, allowRoots: [dir], extraArgs: ['--socket', path.join(dir, 'relay-sender.sock')] });
    const res = await runAsNobody(BIN.relay, ['status', '--socket', agent.socketPath], { RELAY_AGENT_USER: '0' });
    expect(res.code).to.equal(3);
    expect(res.stderr).to.contain('permission denied').and.to.contain('--socket-group');
    expect(res.stderr).to.not.contain('is relay-sender running');
  });

  it('--socket-group lets that group in: a folder the agent creates is 0750 and the socket 0660 in the group', async () => {
    const parent = await tmpDir('relay-grp-');
    await chmod(parent, 0o755);
    const sock = path.join(parent, 'run', 'relay-sender.sock');
    const agent = await startAgent({ receivers: {}, allowRoots: [parent], extraArgs: ['--socket', sock, '--socket-group', String(NOBODY)] });
    const folder = await stat(path.dirname(sock));
    expect([folder.mode & 0o777, folder.gid]).to.deep.equal([0o750, NOBODY]);
    const socket = await stat(sock);
    expect([socket.mode & 0o777, socket.gid]).to.deep.equal([0o660, NOBODY]);
    const res = await runAsNobody(BIN.relay, ['status', '--json', '--socket', sock]);
    // It answered (an agent with no receivers: status exits 1 and says so).
    expect(res.code, res.stderr).to.equal(1);
    expect(JSON.parse(res.stdout)).to.deep.include({ receivers: [] });
    await agent.stop();
  });
});
