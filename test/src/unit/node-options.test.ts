import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RECEIVER_NODE_OPTIONS, RELAY_NODE_OPTIONS } from '../bench/proc.js';
import { REPO_ROOT } from '../support/util.js';

/** The text of one top-level service of swarm-stack.yml (from its key to the next service's). */
async function stackService(name: string): Promise<string> {
  const stack = await readFile(path.join(REPO_ROOT, 'swarm-stack.yml'), 'utf8');
  const found = new RegExp(`^  ${name}:\\n((?:(?:    .*)?\\n)*)`, 'm').exec(stack);
  expect(found, `service ${name} in swarm-stack.yml`).to.not.equal(null);
  return found![1]!;
}

describe('node options: the bench runs the agents as the image and the stack do', () => {
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
});
