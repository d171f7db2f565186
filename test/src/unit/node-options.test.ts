import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RELAY_NODE_OPTIONS } from '../bench/proc.js';
import { REPO_ROOT } from '../support/util.js';

describe('node options: the bench runs the agents as the image does', () => {
  it('the Dockerfile sets NODE_OPTIONS to the options the bench gives its agents', async () => {
    const dockerfile = await readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const found = /NODE_OPTIONS="([^"]*)"/.exec(dockerfile);
    expect(found, 'NODE_OPTIONS="…" in the Dockerfile').to.not.equal(null);
    expect(found![1]).to.equal(RELAY_NODE_OPTIONS);
  });

  it('every option is one Node accepts in NODE_OPTIONS', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['-e', 'process.exit(0)'], { env: { ...process.env, NODE_OPTIONS: RELAY_NODE_OPTIONS }, encoding: 'utf8' });
    expect(r.stderr).to.equal('');
    expect(r.status).to.equal(0);
  });
});
