/**
 * relay-sender's command line: every option also comes from its env variable through commander, typed,
 * and a bad value (argv or env) is a usage error (exit 2) that names the flag, never a started agent.
 */
import path from 'node:path';
import { expect } from 'chai';
import { startAgent } from '../support/agent.js';
import { BIN, runBin, startReceiver, tmpDir, TOKEN, type TestReceiver } from '../support/util.js';

describe('relay-sender CLI: argv and env', function () {
  let receivers: TestReceiver[] = [];
  afterEach(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    receivers = [];
  });

  const refuse = async (args: string[], env: Record<string, string> = {}): Promise<string> => {
    const sock = path.join(await tmpDir('relay-cli-'), 'a.sock');
    const res = await runBin(BIN.sender, ['--socket', sock, ...args], { env: { RELAY_TOKEN: TOKEN, ...env }, timeoutMs: 20_000 });
    expect(res.code, res.stderr).to.equal(2);
    return res.stderr;
  };

  it('refuses a bad number, duration, listen address or receiver with exit 2 naming the flag', async () => {
    expect(await refuse(['--concurrency', 'many'])).to.contain('--concurrency').and.contain('not a positive integer');
    expect(await refuse(['--heartbeat', 'soon'])).to.contain('--heartbeat');
    expect(await refuse(['--http', 'localhost'])).to.contain('--http');
    expect(await refuse(['--receiver', 'no-equals-sign'])).to.contain('--receiver');
    expect(await refuse(['--discover', 'tasks.receiver'])).to.contain('--discover');
    expect(await refuse(['--discover-grace', 'soon'])).to.contain('--discover-grace').and.contain('not a duration');
    expect(await refuse(['--discover-grace', '2h'])).to.contain('discover grace must be between 0 and 1h');
  });

  it('refuses the same bad values from the environment', async () => {
    expect(await refuse([], { RELAY_CONCURRENCY: '0' })).to.contain('--concurrency');
    expect(await refuse([], { RELAY_RECEIVERS: 'a=http://127.0.0.1:1,broken' })).to.contain('--receiver');
    expect(await refuse([], { RELAY_DISCOVER_GRACE: 'later' })).to.contain('--discover-grace');
  });

  it('takes receivers and allow-roots from the environment (comma- and colon-separated lists)', async () => {
    const a = await startReceiver();
    const b = await startReceiver();
    receivers = [a, b];
    const roots = [await tmpDir('relay-root-a-'), await tmpDir('relay-root-b-')];
    const agent = await startAgent({
      receivers: {}, allowRoots: [],
      env: { RELAY_RECEIVERS: `a=${a.url},b=${b.url}`, RELAY_ALLOW_ROOTS: roots.join(':') },
    });
    const started = agent.logs.find((l) => l.msg === 'sender agent started') as unknown as { allowRoots?: string[] };
    expect(started.allowRoots).to.have.length(2);
    const status = await agent.relay(['status', '--json']);
    expect(status.code, status.stderr).to.equal(0);
    const names = (JSON.parse(status.stdout) as { receivers: { name: string }[] }).receivers.map((r) => r.name).sort();
    expect(names).to.deep.equal(['a', 'b']);
  });
});
