import path from 'node:path';
import { expect } from 'chai';
import type { JobEvent } from '@relayer/agent-sender';
import { startAgent } from '../support/agent.js';
import {
  BIN, closeAll, randomFile, runBin, sha256File, startReceiver, startReceiverProcess, tmpDir, TOKEN,
} from '../support/util.js';

const env = { RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined, RELAY_SOCKET: undefined };
const relay = (args: string[]) => runBin(BIN.relay, args, { env, timeoutMs: 30_000 });

type Received = Extract<JobEvent, { type: 'received' }>;

describe('confirmations say which node and where on its host (relay-receiver --display-dir)', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  it('prints node:host path from --display-dir, while the file is written to --dir', async () => {
    const inbox = await tmpDir('relay-inbox-');
    const r = await startReceiverProcess({ dir: inbox, args: ['--node', 'pi2', '--display-dir', '/srv/relay-inbox'] });
    const f = await randomFile(await tmpDir(), 70_000);
    const res = await relay(['send', '--direct', '--to', r.url, '--as', 'sub/app.bin', f.path]);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.contain(`received sub/app.bin ${f.size} bytes sha256=${f.sha256} on ${r.url} → pi2:/srv/relay-inbox/sub/app.bin in `);
    expect(await sha256File(path.join(inbox, 'sub', 'app.bin'))).to.equal(f.sha256);
  });

  it('takes RELAY_DISPLAY_DIR from the environment, and --json carries node, displayPath and the real path', async () => {
    const inbox = await tmpDir('relay-inbox-');
    const r = await startReceiverProcess({ dir: inbox, args: ['--node', 'pi3'], env: { RELAY_DISPLAY_DIR: '/srv/inbox' } });
    const f = await randomFile(await tmpDir(), 1000, 'app.bin');
    const res = await relay(['send', '--direct', '--json', '--to', r.url, f.path]);
    expect(res.code, res.stderr).to.equal(0);
    const received = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as JobEvent).find((e): e is Received => e.type === 'received');
    expect(received).to.include({ node: 'pi3', displayPath: '/srv/inbox/app.bin', path: path.join(inbox, 'app.bin') });
  });

  it('without --display-dir, prints node:the receiver\'s own path; through the agent, the receiver name and its node', async () => {
    const r = await startReceiver({ node: 'edge-1' });
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 5000, 'plain.bin');
    const direct = await relay(['send', '--direct', '--to', r.url, f.path]);
    expect(direct.stdout).to.contain(`on ${r.url} → edge-1:${path.join(r.dir, 'plain.bin')} in `);
    const agent = await startAgent({ receivers: { east: r.url }, allowRoots: [src] });
    const res = await agent.relay(['send', f.path, '--to', 'east']);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.contain(`on east → edge-1:${path.join(r.dir, 'plain.bin')} in `);
  });

  it('relay-receiver exits 2 for a --display-dir that is not absolute', async () => {
    const res = await runBin(BIN.receiver, ['--dir', await tmpDir(), '--display-dir', 'srv/inbox', '--port', '0'], { env });
    expect(res.code).to.equal(2);
    expect(res.stderr).to.contain('display dir must be an absolute path');
  });
});
