import { symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode } from '@relayer/common';
import type { JobEvent } from '@relayer/agent-sender';
import {
  BIN, closeAll, partialEntries, publishedEntries, randomFile, runBin, sha256File, startReceiver, tmpDir, TOKEN,
} from '../support/util.js';

const env = { RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined, RELAY_SOCKET: undefined };
const relay = (args: string[], extraEnv: Record<string, string | undefined> = {}) =>
  runBin(BIN.relay, args, { env: { ...env, ...extraEnv }, timeoutMs: 30_000 });

describe('relay send --direct (the real bin)', () => {
  afterEach(closeAll);

  it('exits 0 and prints a line with the name, size and sha256 of each confirmed file', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 300_000);
    const name = path.basename(f.path);
    const res = await relay(['send', '--direct', '--to', r.url, f.path]);
    expect(res.code, res.stderr).to.equal(0);
    const line = res.stdout.split('\n').find((l) => l.startsWith('received '));
    expect(line, res.stdout).to.be.a('string');
    expect(line).to.contain(`received ${name} ${f.size} bytes sha256=${f.sha256}`);
    expect(line).to.contain(path.join(r.dir, name));
    expect(res.stdout).to.match(/^done: 1 file on http:\/\/127\.0\.0\.1:\d+ \(1 confirmed\)/m);
    expect(await sha256File(path.join(r.dir, name))).to.equal(f.sha256);
  });

  it('adds up repeated --to options (and comma-separated ones): every target gets the file', async () => {
    const [a, b, c] = [await startReceiver(), await startReceiver(), await startReceiver()];
    const f = await randomFile(await tmpDir(), 70_000);
    const name = path.basename(f.path);
    const res = await relay(['send', '--direct', '--to', a.url, '--to', `${b.url},${c.url}`, f.path]);
    expect(res.code, res.stderr + res.stdout).to.equal(0);
    expect(res.stdout).to.match(/^done: 1 file on each of .*, .*, .* \(3 confirmed\)/m);
    for (const r of [a, b, c]) expect(await sha256File(path.join(r.dir, name))).to.equal(f.sha256);
  });

  it('honours --as, --chunk-size, --window and --token-file', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 200_000);
    const tokenFile = path.join(await tmpDir(), 'token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    const res = await relay(
      ['send', '--direct', '--to', r.url, '--as', 'deep/er/x.bin', '--chunk-size', '16K', '--window', '2', '--token-file', tokenFile, f.path],
      { RELAY_TOKEN: undefined },
    );
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.contain(`received deep/er/x.bin ${f.size} bytes sha256=${f.sha256}`);
    expect(await sha256File(path.join(r.dir, 'deep', 'er', 'x.bin'))).to.equal(f.sha256);
  });

  it('exits 2 (a usage error: nothing was sent) and prints the code when the sender refuses the name (--as ../x)', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 10);
    const res = await relay(['send', '--direct', '--to', r.url, '--as', '../escape.bin', f.path]);
    expect(res.code).to.equal(2);
    expect(res.stderr).to.contain(`relay: ${ErrorCode.BAD_NAME}:`);
    expect(await publishedEntries(r.dir)).to.deep.equal([]);
  });

  it('exits 1 and prints the code when the receiver refuses the name (a symlink inside its folder)', async () => {
    const r = await startReceiver();
    await symlink(await tmpDir(), path.join(r.dir, 'link'));
    const f = await randomFile(await tmpDir(), 10);
    const res = await relay(['send', '--direct', '--to', r.url, '--as', 'link/x.bin', f.path]);
    expect(res.code).to.equal(1);
    expect(res.stdout).to.match(/^FAILED link\/x\.bin to .*: BAD_NAME: /m);
    expect(res.stdout).to.match(/^FAILED: 1 failed, 0 confirmed/m);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });

  it('exits 1 with AUTH for a wrong token', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 10);
    const res = await relay(['send', '--direct', '--to', r.url, f.path], { RELAY_TOKEN: 'wrong-token' });
    expect(res.code).to.equal(1);
    expect(res.stdout).to.contain(': AUTH: ');
    expect(res.stdout + res.stderr).to.not.contain('wrong-token');
  });

  const usage: Array<[string, string[], RegExp]> = [
    ['no --to', ['send', '--direct', 'file.bin'], /required option '--to <targets>'/],
    ['no file', ['send', '--direct', '--to', 'http://127.0.0.1:1'], /missing required argument/],
    ['a target that is not a URL with --direct', ['send', '--direct', '--to', 'receiver-a', 'x'], /USAGE: --direct needs URLs/],
    ['a bad --chunk-size', ['send', '--direct', '--to', 'http://127.0.0.1:1', '--chunk-size', 'big', 'x'], /argument 'big' is invalid\. not a size/],
    ['a bad --window', ['send', '--direct', '--to', 'http://127.0.0.1:1', '--window', '0', 'x'], /'--window <n>' argument '0' is invalid\. not a positive integer/],
    ['a bad --timeout', ['send', '--direct', '--to', 'http://127.0.0.1:1', '--timeout', 'soon', 'x'], /'--timeout <duration>' argument 'soon' is invalid\. not a duration/],
    ['an unknown command', ['fetch'], /unknown command/],
  ];
  for (const [what, args, message] of usage) {
    it(`exits 2 for a usage error: ${what}`, async () => {
      const res = await relay(args);
      expect(res.code, res.stdout + res.stderr).to.equal(2);
      expect(res.stderr).to.match(message);
      // The error and where to look, not thirty lines of help.
      if (!/--direct needs URLs/.test(String(message))) {
        expect(res.stderr).to.match(/see 'relay( send)? --help'/);
        expect(res.stderr.trim().split('\n').length, res.stderr).to.be.at.most(3);
      }
      expect(res.stderr).to.not.contain('Usage:');
    });
  }

  it('exits 2 when no token is given', async () => {
    const res = await relay(['send', '--direct', '--to', 'http://127.0.0.1:1', 'x'], { RELAY_TOKEN: undefined });
    expect(res.code).to.equal(2);
    expect(res.stderr).to.contain('a shared token is required');
  });

  it('--json prints one JSON object per line: queued, start, received and done', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 50_000);
    const name = path.basename(f.path);
    const res = await relay(['send', '--direct', '--json', '--to', r.url, f.path]);
    expect(res.code, res.stderr).to.equal(0);
    const lines = res.stdout.trim().split('\n');
    const events = lines.map((l) => JSON.parse(l) as JobEvent);
    expect(events.map((e) => e.type)).to.include.members(['queued', 'start', 'received', 'done']);
    const received = events.find((e): e is Extract<JobEvent, { type: 'received' }> => e.type === 'received')!;
    expect(received).to.include({ target: r.url, name, size: f.size, sha256: f.sha256, path: path.join(r.dir, name), unchanged: false });
    expect(events.at(-1)).to.include({ type: 'done', ok: true, confirmed: 1, failed: 0 });
  });

  it('--json reports a refusal as a failed event with its code and exits 1', async () => {
    const r = await startReceiver({ maxFileSize: 10 });
    const f = await randomFile(await tmpDir(), 11);
    const res = await relay(['send', '--direct', '--json', '--to', r.url, f.path]);
    expect(res.code).to.equal(1);
    const events = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as JobEvent);
    expect(events.find((e) => e.type === 'failed')).to.include({ code: ErrorCode.TOO_LARGE, name: path.basename(f.path) });
    expect(events.at(-1)).to.include({ type: 'done', ok: false, failed: 1 });
  });
});
