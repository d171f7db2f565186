import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode, VERSION } from '@relayer/common';
import {
  BIN, chunkOf, closeAll, connectedLink, expectRejectsCode, randomFile, runBin, send, sha256File, startReceiverProcess, tmpDir, TOKEN,
} from '../support/util.js';

/** Env for a child that must not see a token from the parent's environment. */
const NO_TOKEN = { RELAY_TOKEN: undefined, RELAY_TOKEN_FILE: undefined };

describe('relay-receiver CLI', () => {
  afterEach(closeAll);

  it('exits 2 with a clear message when no token is given', async () => {
    const dir = await tmpDir();
    const res = await runBin(BIN.receiver, ['--host', '127.0.0.1', '--port', '0', '--dir', dir], { env: NO_TOKEN, timeoutMs: 20_000 });
    expect(res.code).to.equal(2);
    expect(res.stderr).to.contain('relay-receiver: a shared token is required');
    expect(res.stderr).to.contain('RELAY_TOKEN');
  });

  it('exits 2 when the token file is empty or missing', async () => {
    const dir = await tmpDir();
    await writeFile(path.join(dir, 'empty'), '');
    for (const file of [path.join(dir, 'empty'), path.join(dir, 'missing')]) {
      const res = await runBin(BIN.receiver, ['--port', '0', '--dir', dir, '--token-file', file], { env: NO_TOKEN, timeoutMs: 20_000 });
      expect(res.code, res.stderr).to.equal(2);
      expect(res.stderr).to.match(/token file/);
    }
  });

  it('exits 2 for a bad size, duration or port, naming the bad value', async () => {
    const dir = await tmpDir();
    const cases: Array<[string[], RegExp]> = [
      [['--max-file-size', '10X'], /not a size: "10X"/],
      [['--partial-ttl', 'soon'], /not a duration: "soon"/],
      [['--flush-every', 'often'], /not a size: "often"/],
      [['--port', 'http'], /not a port: "http"/],
      [['--no-such-flag'], /unknown option/],
    ];
    for (const [args, message] of cases) {
      const res = await runBin(BIN.receiver, ['--dir', dir, ...args], { env: { RELAY_TOKEN: 'x' }, timeoutMs: 20_000 });
      expect(res.code, args.join(' ')).to.equal(2);
      expect(res.stderr).to.match(message);
    }
  });

  it('takes the token from --token-file and accepts a send made with it', async () => {
    const dir = await tmpDir();
    const tokenFile = path.join(await tmpDir(), 'token');
    await writeFile(tokenFile, 'token-from-file\n');
    const rp = await startReceiverProcess({ dir, args: ['--token-file', tokenFile], env: NO_TOKEN });
    const f = await randomFile(await tmpDir(), 12345);
    const res = await send([f.path], [rp.url], { token: 'token-from-file' });
    expect(res.ok).to.equal(true);
    expect(await sha256File(path.join(dir, path.basename(f.path)))).to.equal(f.sha256);
  });

  it('--flush-every: a receiver flushing every 64K publishes a 3 MiB file intact, and one with 0 too', async () => {
    for (const every of ['64K', '0']) {
      const dir = await tmpDir();
      const rp = await startReceiverProcess({ dir, args: ['--flush-every', every] });
      const f = await randomFile(await tmpDir(), 3 * 1024 * 1024 + 7);
      const res = await send([f.path], [rp.url], { transfer: { chunkSize: 256 * 1024 } });
      expect(res.ok, `--flush-every ${every}: ${JSON.stringify(res.failed)}`).to.equal(true);
      expect(await sha256File(path.join(dir, path.basename(f.path)))).to.equal(f.sha256);
    }
  });

  it('GET /healthz answers 200 with JSON: status, version, freeBytes, activeTransfers', async () => {
    const dir = await tmpDir();
    const rp = await startReceiverProcess({ dir, args: ['--node', 'test-node'] });
    const res = await fetch(`${rp.url}/healthz`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.contain('application/json');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.status).to.equal('ok');
    expect(body.version).to.equal(VERSION);
    expect(body.node).to.equal('test-node');
    expect(body.freeBytes).to.be.a('number').and.to.be.greaterThan(0);
    expect(body.activeTransfers).to.equal(0);
    expect(body.uptimeSec).to.be.a('number');
    expect(body.senders).to.equal(0);
  });

  it('/healthz counts a transfer in progress; other paths are 404', async () => {
    const dir = await tmpDir();
    const rp = await startReceiverProcess({ dir });
    const link = await connectedLink(rp.url);
    const offer = await link.request('offer', { name: 'slow.bin', size: 10, mtimeMs: 1 }, 5000);
    await link.request('chunk', chunkOf(offer.lease, 0, Buffer.alloc(5)), 5000);
    const body = (await (await fetch(`${rp.url}/healthz`)).json()) as Record<string, unknown>;
    expect(body.activeTransfers).to.equal(1);
    expect(body.senders).to.equal(1);
    expect((await fetch(`${rp.url}/`)).status).to.equal(404);
    expect((await fetch(`${rp.url}/healthz`, { method: 'POST' })).status).to.equal(404);
  });

  it('keeps running after a malformed offer, answering it with PROTOCOL', async () => {
    const dir = await tmpDir();
    const rp = await startReceiverProcess({ dir });
    const link = await connectedLink(rp.url);
    await expectRejectsCode(link.request('offer', { name: 42, size: 1, mtimeMs: 1 } as never, 5000), ErrorCode.PROTOCOL);
    await expectRejectsCode(link.request('chunk', { lease: 't', offset: 0, crc: 0, data: 'x' } as never, 5000), ErrorCode.PROTOCOL);
    expect(rp.child.exitCode).to.equal(null);
    expect((await fetch(`${rp.url}/healthz`)).status).to.equal(200);
  });

  it('logs JSON lines on stderr without the token, and exits 0 on SIGTERM', async () => {
    const dir = await tmpDir();
    const rp = await startReceiverProcess({ dir });
    const f = await randomFile(await tmpDir(), 1000);
    expect((await send([f.path], [rp.url])).ok).to.equal(true);
    rp.child.kill('SIGTERM');
    const { code } = await rp.exited;
    expect(code).to.equal(0);
    expect(rp.logs.map((l) => l.msg)).to.include.members(['receiver listening', 'sender connected', 'file received', 'shutting down']);
    expect(rp.stderr()).to.not.contain(TOKEN);
  });
});
