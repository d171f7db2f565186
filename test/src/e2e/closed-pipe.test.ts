import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { startAgent } from '../support/agent.js';
import { BIN, closeAll, MiB, randomFile, sha256File, startReceiver, tmpDir, track } from '../support/util.js';

/**
 * `relay status | head -2`, `relay send … | head -1`: the reader of relay's stdout goes away early. Here
 * the reader is the test: it closes its end of a real pipe, and relay's next write meets EPIPE.
 */
function spawnRelay(socketPath: string, args: string[]) {
  const child = spawn(process.execPath, [BIN.relay, ...args], {
    env: { ...process.env, RELAY_SOCKET: socketPath, RELAY_LOG_LEVEL: undefined }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  track(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, exited, stderr: () => stderr };
}

describe('relay with its stdout closed early (a pipe into head)', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  it('relay status exits 0 quietly when nobody reads its output', async () => {
    const a = await startReceiver();
    const b = await startReceiver();
    const agent = await startAgent({ receivers: { a: a.url, b: b.url }, allowRoots: [] });
    const run = spawnRelay(agent.socketPath, ['status']);
    // Closed before relay writes anything: every line it writes meets EPIPE.
    run.child.stdout.destroy();
    const { code } = await run.exited;
    expect(run.stderr()).to.not.match(/EPIPE|Error|at /);
    expect(code).to.equal(0);
  });

  it('relay send --json keeps going after its reader left after the first line: the file is delivered, exit 0, no stack trace', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 4 * MiB, 'piped.bin');
    const agent = await startAgent({ receivers: { a: r.url }, allowRoots: [src] });
    // Paced, so that lines are still to come when the reader goes.
    const run = spawnRelay(agent.socketPath, ['send', f.path, '--to', 'a', '--json', '--bwlimit', '4M', '--chunk-size', '256K']);
    const first = await new Promise<string>((resolve) => createInterface({ input: run.child.stdout }).once('line', resolve));
    expect(JSON.parse(first)).to.include({ type: 'queued' });
    run.child.stdout.destroy();
    const { code } = await run.exited;
    expect(run.stderr()).to.not.match(/EPIPE|Error|at /);
    expect(code).to.equal(0);
    expect(await sha256File(path.join(r.dir, 'piped.bin'))).to.equal(f.sha256);
  });
});
