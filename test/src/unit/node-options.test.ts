import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parse } from 'yaml';
import { RECEIVER_NODE_FLAGS } from '@relayer/agent-receiver';
import { bin, RECEIVER_NODE_OPTIONS, RELAY_NODE_OPTIONS } from '../bench/proc.js';
import { closeAll, REPO_ROOT, tmpDir, track } from '../support/util.js';

/** The environment of one service of swarm-stack.yml, as a YAML parser reads it. */
async function stackEnvironment(name: string): Promise<Record<string, unknown>> {
  const stack = parse(await readFile(path.join(REPO_ROOT, 'swarm-stack.yml'), 'utf8')) as { services?: Record<string, { environment?: Record<string, unknown> }> };
  const service = stack.services?.[name];
  expect(service, `service ${name} in swarm-stack.yml`).to.not.equal(undefined);
  return service!.environment ?? {};
}

/** Starts a bin, waits for `ready` on its stderr, and gives its command line as the kernel has it. */
async function runningCmdline(file: string, args: string[], ready: string): Promise<{ cmdline: string[]; stop: () => Promise<number | null> }> {
  const child = spawn(file, args, { env: { ...process.env, RELAY_TOKEN: 'launch-flag-test-token' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  track(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const lines = createInterface({ input: child.stderr! });
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (l) => { if (l.includes(ready)) resolve(); });
    child.once('exit', (code) => reject(new Error(`${file} exited with ${String(code)} before "${ready}"`)));
  });
  const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  return { cmdline, stop: () => (child.kill('SIGTERM'), exited) };
}

describe('node options: the bench runs the agents as the image and the stack do', () => {
  afterEach(closeAll);

  it('the Dockerfile sets NODE_OPTIONS to the options the bench gives the sender agent and relay', async () => {
    const dockerfile = await readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const found = /NODE_OPTIONS="([^"]*)"/.exec(dockerfile);
    expect(found, 'NODE_OPTIONS="…" in the Dockerfile').to.not.equal(null);
    expect(found![1]).to.equal(RELAY_NODE_OPTIONS);
  });

  it("the stack's receiver service sets the options the bench gives its receivers; its sender keeps the image's", async () => {
    expect((await stackEnvironment('receiver')).NODE_OPTIONS, 'NODE_OPTIONS of the receiver service').to.equal(RECEIVER_NODE_OPTIONS);
    expect(await stackEnvironment('sender')).to.not.have.property('NODE_OPTIONS');
  });

  for (const [which, options] of [['agents', RELAY_NODE_OPTIONS], ['receivers', RECEIVER_NODE_OPTIONS]]) {
    it(`every option of the ${which}' set is one Node accepts in NODE_OPTIONS`, () => {
      const r = spawnSync(process.execPath, ['-e', 'process.exit(0)'], { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' });
      expect(r.stderr).to.equal('');
      expect(r.status).to.equal(0);
    });
  }

  it("relay-receiver's bin runs Node with RECEIVER_NODE_FLAGS (flags NODE_OPTIONS refuses) and answers as itself", () => {
    expect(RECEIVER_NODE_FLAGS).to.deep.equal(['--initial-old-space-size=56']);
    const direct = spawnSync(bin('relay-receiver'), ['--version'], { encoding: 'utf8' });
    expect(direct.stderr).to.equal('');
    expect(direct.status).to.equal(0);
    expect(direct.stdout.trim()).to.match(/^\d+\.\d+\.\d+$/);
    for (const flag of RECEIVER_NODE_FLAGS) {
      const refused = spawnSync(process.execPath, ['-e', 'process.exit(0)'], { env: { ...process.env, NODE_OPTIONS: flag }, encoding: 'utf8' });
      expect(refused.status, `Node refuses ${flag} in NODE_OPTIONS: it has to be on the command line`).to.not.equal(0);
    }
  });

  it('relay-receiver run on its own is one Node process with exactly those flags (sh execs it: same pid, signals reach Node)', async () => {
    const dir = await tmpDir('relay-flag-');
    const run = await runningCmdline(bin('relay-receiver'), ['--host', '127.0.0.1', '--port', '0', '--dir', dir, '--summary-every', '0'], 'receiver listening');
    expect(path.basename(run.cmdline[0]!)).to.equal('node');
    expect(run.cmdline.slice(1, 1 + RECEIVER_NODE_FLAGS.length)).to.deep.equal([...RECEIVER_NODE_FLAGS]);
    expect(run.cmdline[1 + RECEIVER_NODE_FLAGS.length]).to.match(/relay-receiver(\.js)?$/);
    expect(await run.stop(), 'exit code after SIGTERM').to.equal(0);
  });

  it('relay-sender runs Node with no flags of its own (its options come from NODE_OPTIONS)', async () => {
    const dir = await tmpDir('relay-flag-');
    const run = await runningCmdline(bin('relay-sender'), ['--socket', path.join(dir, 'a.sock'), '--summary-every', '0'], 'sender agent started');
    expect(path.basename(run.cmdline[0]!)).to.equal('node');
    expect(run.cmdline[1]).to.match(/relay-sender(\.js)?$/);
    expect(await run.stop()).to.equal(0);
  });
});
