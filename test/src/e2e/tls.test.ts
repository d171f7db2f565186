import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode } from '@relayer/common';
import { startAgent } from '../support/agent.js';
import {
  BIN, closeAll, publishedEntries, randomFile, runBin, send, sha256File, startReceiver, startReceiverProcess, tmpDir, TOKEN,
} from '../support/util.js';

interface Pki {
  dir: string;
  ca: Buffer;
  otherCa: Buffer;
  local: { cert: Buffer; key: Buffer; certFile: string; keyFile: string };
  other: { cert: Buffer; key: Buffer };
}

/** Two CAs made with `relay certs`: one signs "local" (127.0.0.1) and "other" (a name we never connect by). */
async function makePki(): Promise<Pki> {
  // Kept for the whole suite (not tracked per test): removed in after().
  const dir = await mkdtemp(path.join(os.tmpdir(), 'relay-pki-'));
  const made = await runBin(BIN.relay, ['certs', '--out', path.join(dir, 'a'), '--node', 'local=127.0.0.1,localhost', '--node', 'other']);
  expect(made.code, made.stderr).to.equal(0);
  expect(made.stdout).to.contain('made CA');
  const other = await runBin(BIN.relay, ['certs', '--out', path.join(dir, 'b'), '--node', 'local=127.0.0.1']);
  expect(other.code, other.stderr).to.equal(0);
  const f = (p: string): Promise<Buffer> => readFile(path.join(dir, p));
  expect((await stat(path.join(dir, 'a', 'local.key'))).mode & 0o777).to.equal(0o600);
  expect((await stat(path.join(dir, 'a', 'ca.key'))).mode & 0o777).to.equal(0o600);
  return {
    dir,
    ca: await f('a/ca.crt'),
    otherCa: await f('b/ca.crt'),
    local: { cert: await f('a/local.crt'), key: await f('a/local.key'), certFile: path.join(dir, 'a/local.crt'), keyFile: path.join(dir, 'a/local.key') },
    other: { cert: await f('a/other.crt'), key: await f('a/other.key') },
  };
}

describe('TLS: https/wss receivers, a private CA, host names verified, never a fallback to plain', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  let pki: Pki;
  before(async () => {
    pki = await makePki();
  });
  after(async () => {
    if (pki) await rm(pki.dir, { recursive: true, force: true });
  });

  it('round trip over wss with the CA made by relay certs', async () => {
    const r = await startReceiver({ tls: { cert: pki.local.cert, key: pki.local.key } });
    expect(r.url).to.match(/^https:\/\//);
    const f = await randomFile(await tmpDir(), 2 * 1024 * 1024 + 7);
    const res = await send([f.path], [r.url], { ca: pki.ca });
    expect(res.ok, JSON.stringify(res.failed)).to.equal(true);
    expect(await sha256File(path.join(r.dir, res.received[0]!.name))).to.equal(f.sha256);
  });

  it('refuses a certificate from another CA, or with no CA given, with TLS, and sends nothing', async () => {
    const r = await startReceiver({ tls: { cert: pki.local.cert, key: pki.local.key } });
    const f = await randomFile(await tmpDir(), 1000);
    for (const ca of [pki.otherCa, undefined]) {
      const res = await send([f.path], [r.url], { ca });
      expect(res.ok).to.equal(false);
      expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.TLS]);
      expect(res.failed[0]!.message).to.contain('not trusted').and.to.contain('--ca');
    }
    expect(await publishedEntries(r.dir)).to.deep.equal([]);
  });

  it('refuses a trusted certificate made for another host name with TLS', async () => {
    const r = await startReceiver({ tls: { cert: pki.other.cert, key: pki.other.key } });
    const f = await randomFile(await tmpDir(), 1000);
    const res = await send([f.path], [r.url], { ca: pki.ca });
    expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.TLS]);
    expect(res.failed[0]!.message).to.contain('not for this host name');
    expect(await publishedEntries(r.dir)).to.deep.equal([]);
  });

  it('a plain client to a TLS receiver gets nothing through, and is told the receiver may want https://', async () => {
    const r = await startReceiver({ tls: { cert: pki.local.cert, key: pki.local.key } });
    const f = await randomFile(await tmpDir(), 1000);
    const res = await send([f.path], [r.url.replace('https://', 'http://')], { transfer: { timeoutMs: 3000 } });
    expect(res.ok).to.equal(false);
    expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.UNREACHABLE]);
    expect(res.failed[0]!.message).to.contain('https://');
    expect(await publishedEntries(r.dir)).to.deep.equal([]);
  });

  it('a TLS client to a plain receiver is refused with TLS (no fallback to plain)', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 1000);
    const res = await send([f.path], [r.url.replace('http://', 'https://')], { ca: pki.ca });
    expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.TLS]);
    expect(res.failed[0]!.message).to.contain('does not speak TLS');
    expect(await publishedEntries(r.dir)).to.deep.equal([]);
  });

  it('the real binaries: relay-receiver --tls-cert/--tls-key, relay-sender --ca and relay send --direct --ca exit 0; a wrong CA exits 1 with TLS', async () => {
    const inbox = await tmpDir('relay-inbox-');
    const rp = await startReceiverProcess({ dir: inbox, args: ['--tls-cert', pki.local.certFile, '--tls-key', pki.local.keyFile] });
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 300_000, 'over-tls.bin');
    const agent = await startAgent({
      receivers: { r: `https://127.0.0.1:${rp.port}` }, allowRoots: [src], extraArgs: ['--ca', path.join(pki.dir, 'a', 'ca.crt')],
    });
    const res = await agent.relay(['send', f.path, '--to', 'r']);
    expect(res.code, res.stderr).to.equal(0);
    expect(await sha256File(path.join(inbox, 'over-tls.bin'))).to.equal(f.sha256);
    const direct = await runBin(BIN.relay, ['send', f.path, '--direct', '--to', `https://127.0.0.1:${rp.port}`, '--as', 'direct.bin',
      '--ca', path.join(pki.dir, 'a', 'ca.crt')], { env: { RELAY_TOKEN: TOKEN } });
    expect(direct.code, direct.stderr).to.equal(0);
    expect(await sha256File(path.join(inbox, 'direct.bin'))).to.equal(f.sha256);
    const untrusted = await runBin(BIN.relay, ['send', f.path, '--direct', '--to', `https://127.0.0.1:${rp.port}`, '--as', 'no.bin',
      '--ca', path.join(pki.dir, 'b', 'ca.crt')], { env: { RELAY_TOKEN: TOKEN } });
    expect(untrusted.code).to.equal(1);
    expect(untrusted.stdout + untrusted.stderr).to.contain('TLS');
  });

  it('relay-receiver refuses a --tls-cert without --tls-key, and a key that does not match (exit 2, one line)', async () => {
    const inbox = await tmpDir('relay-inbox-');
    const half = await runBin(BIN.receiver, ['--dir', inbox, '--port', '0', '--tls-cert', pki.local.certFile], { env: { RELAY_TOKEN: 'x' } });
    expect(half.code).to.equal(2);
    expect(half.stderr).to.contain('--tls-key');
    const otherKey = path.join(pki.dir, 'a', 'other.key');
    const mismatch = await runBin(BIN.receiver, ['--dir', inbox, '--port', '0', '--tls-cert', pki.local.certFile, '--tls-key', otherKey], { env: { RELAY_TOKEN: 'x' } });
    expect(mismatch.code).to.equal(2);
    expect(mismatch.stderr.trim().split('\n')).to.have.length(1);
    expect(mismatch.stderr).to.contain('TLS');
  });
});
