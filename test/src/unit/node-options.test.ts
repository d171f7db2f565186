import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { bin, RECEIVER_NODE_OPTIONS, RELAY_NODE_OPTIONS, launchFlags } from '../bench/proc.js';
import { closeAll, REPO_ROOT, tmpDir, track } from '../support/util.js';

/** The text of one top-level service of swarm-stack.yml (from its key to the next service's). */
async function stackService(name: string): Promise<string> {
  const stack = await readFile(path.join(REPO_ROOT, 'swarm-stack.yml'), 'utf8');
  const found = new RegExp(`^  ${name}:\\n((?:(?:    .*)?\\n)*)`, 'm').exec(stack);
  expect(found, `service ${name} in swarm-stack.yml`).to.not.equal(null);
  return found![1]!;
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
    const receiver = /^\s+NODE_OPTIONS: "([^"]*)"$/m.exec(await stackService('receiver'));
    expect(receiver, 'NODE_OPTIONS in the receiver service').to.not.equal(null);
    expect(receiver![1]).to.equal(RECEIVER_NODE_OPTIONS);
    expect(await stackService('sender')).to.not.include('NODE_OPTIONS');
  });

  for (const [which, options] of [['agents', RELAY_NODE_OPTIONS], ['receivers', RECEIVER_NODE_OPTIONS]]) {
    it(`every option of the ${which}' set is one Node accepts in NODE_OPTIONS`, () => {
      const r = spawnSync(process.execPath, ['-e', 'process.exit(0)'], { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' });
      expect(r.stderr).to.equal('');
      expect(r.status).to.equal(0);
    });
  }

  it("the receiver's bin starts Node with a 56 MB first old-generation limit (a flag NODE_OPTIONS refuses); the others with none", () => {
    const receiver = bin('relay-receiver');
    expect(launchFlags(receiver)).to.deep.equal(['--initial-old-space-size=56']);
    expect(launchFlags(bin('relay-sender'))).to.deep.equal([]);
    expect(launchFlags(bin('relay'))).to.deep.equal([]);
    // Run as the image and `npx relay-receiver` run it: through sh, which execs Node with the flag.
    const direct = spawnSync(receiver, ['--version'], { encoding: 'utf8' });
    expect(direct.stderr).to.equal('');
    expect(direct.status).to.equal(0);
    expect(direct.stdout.trim()).to.match(/^\d+\.\d+\.\d+$/);
    const refused = spawnSync(process.execPath, ['-e', 'process.exit(0)'], { env: { ...process.env, NODE_OPTIONS: '--initial-old-space-size=56' }, encoding: 'utf8' });
    expect(refused.status, 'Node refuses the flag in NODE_OPTIONS: it has to be on the command line').to.not.equal(0);
  });

  it('relay-receiver run on its own is one Node process with the flag (sh execs it: same pid, signals reach Node)', async () => {
    const dir = await tmpDir('relay-flag-');
    const child = spawn(bin('relay-receiver'), ['--host', '127.0.0.1', '--port', '0', '--dir', dir, '--summary-every', '0'], {
      env: { ...process.env, RELAY_TOKEN: 'launch-flag-test-token' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    track(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    const lines = createInterface({ input: child.stderr! });
    await new Promise<void>((resolve, reject) => {
      lines.on('line', (l) => { if (l.includes('receiver listening')) resolve(); });
      child.once('exit', (code) => reject(new Error(`relay-receiver exited with ${String(code)} before listening`)));
    });
    const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).split('\0');
    expect(path.basename(cmdline[0]!)).to.equal('node');
    expect(cmdline[1]).to.equal('--initial-old-space-size=56');
    child.kill('SIGTERM');
    expect(await exited, 'exit code after SIGTERM').to.equal(0);
  });
});
