import { EventEmitter } from 'node:events';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode } from '@relayer/common';
import { fetchStatus, SenderAgent, sendViaAgent, type JobEvent, type Resolver } from '@relayer/agent-sender';
import { startAgent } from '../support/agent.js';
import {
  BIN, captureLogger, closeAll, MiB, randomFile, runBin, sha256File, startReceiver, testLogger, tmpDir, TOKEN, track, waitFor, type TestReceiver,
} from '../support/util.js';

/**
 * Receivers on several loopback addresses (Linux routes all of 127.0.0.0/8 on lo) and one port, as a
 * Swarm's `tasks.receiver` name would list them; a resolver the test controls plays the DNS.
 */
describe('receiver discovery (--discover name:port)', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  let port: number;
  let src: string;
  const receivers = new Map<string, TestReceiver>();

  /** A receiver on 127.0.0.<last>:port reporting node `node`. */
  async function receiverAt(last: number, node: string): Promise<TestReceiver> {
    const r = await startReceiver({ host: `127.0.0.${last}`, port, node });
    receivers.set(`127.0.0.${last}`, r);
    return r;
  }

  /** DNS as the test says it is now; a thrown error with a code plays a resolver failure. */
  let answer: string[] | NodeJS.ErrnoException;
  /** Emits "called" after each lookup. */
  const dns = new EventEmitter();
  const resolver: Resolver = async (host) => {
    expect(host).to.equal('tasks.receiver');
    setImmediate(() => dns.emit('called'));
    if (answer instanceof Error) throw answer;
    return [...answer];
  };

  /** graceMs: how long a receiver that left DNS is kept; short by default, so tests of leaving end soon. */
  async function startDiscoveringAgent(logger = testLogger('agent'), graceMs = 300): Promise<SenderAgent> {
    const agent = new SenderAgent({
      socketPath: path.join(await tmpDir('relay-agent-'), 'agent.sock'),
      discover: [{ host: 'tasks.receiver', port }], discoverEveryMs: 100, discoverGraceMs: graceMs, resolver,
      heartbeatMs: 100, allowRoots: [src], token: TOKEN, logger,
    });
    await agent.start();
    track(() => agent.close());
    return agent;
  }

  const names = async (agent: SenderAgent): Promise<string[]> =>
    (await fetchStatus(agent.options.socketPath)).receivers.map((r) => r.name).sort();

  beforeEach(async () => {
    receivers.clear();
    src = await tmpDir('relay-src-');
    // The first receiver picks the port; the others share it on their own addresses.
    const first = await startReceiver({ host: '127.0.0.2', port: 0, node: 'node2' });
    port = first.address().port;
    receivers.set('127.0.0.2', first);
    await receiverAt(3, 'node3');
  });

  it('connects to every address behind the name, names each by its node, and `relay send --to all` reaches them all', async () => {
    answer = ['127.0.0.2', '127.0.0.3'];
    const agent = await startDiscoveringAgent();
    expect(await names(agent)).to.deep.equal(['node2', 'node3']);
    const status = await fetchStatus(agent.options.socketPath);
    expect(status.receivers.map((r) => r.url).sort()).to.deep.equal([`http://127.0.0.2:${port}`, `http://127.0.0.3:${port}`]);

    const f = await randomFile(src, 2 * MiB + 5, 'app.bin');
    const res = await runBin(BIN.relay, ['send', f.path, '--to', 'all'], { env: { RELAY_SOCKET: agent.options.socketPath } });
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    for (const [addr, node] of [['127.0.0.2', 'node2'], ['127.0.0.3', 'node3']] as const) {
      const r = receivers.get(addr)!;
      expect(res.stdout).to.contain(`received app.bin ${f.size} bytes sha256=${f.sha256} on ${node} → ${node}:${path.join(r.dir, 'app.bin')}`);
      expect(await sha256File(path.join(r.dir, 'app.bin'))).to.equal(f.sha256);
    }
  });

  it('follows the name: a node that joins appears, one whose address left is closed after the grace and gone from status and --to all', async () => {
    answer = ['127.0.0.2', '127.0.0.3'];
    const agent = await startDiscoveringAgent();
    const node4 = await receiverAt(4, 'node4');
    const removed = waitFor(agent.discoveries[0]!, 'removed', (name: string) => name === 'node2');
    const added = waitFor(agent.discoveries[0]!, 'added', (name: string) => name === 'node4');
    answer = ['127.0.0.3', '127.0.0.4'];
    await Promise.all([removed, added]);
    expect(await names(agent)).to.deep.equal(['node3', 'node4']);

    const f = await randomFile(src, 300_000, 'joined.bin');
    const res = await runBin(BIN.relay, ['send', f.path, '--to', 'all', '--json'], { env: { RELAY_SOCKET: agent.options.socketPath } });
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    const targets = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as JobEvent)
      .filter((e): e is Extract<JobEvent, { type: 'received' }> => e.type === 'received').map((e) => e.target).sort();
    expect(targets).to.deep.equal(['node3', 'node4']);
    expect(await sha256File(path.join(node4.dir, 'joined.bin'))).to.equal(f.sha256);
    const old = await runBin(BIN.relay, ['send', f.path, '--to', 'node2'], { env: { RELAY_SOCKET: agent.options.socketPath } });
    expect(old.code).to.equal(2);
    expect(old.stderr).to.contain('UNKNOWN_RECEIVER: unknown receiver "node2"');
  });

  /** The receiver at 127.0.0.<last> goes (its task killed) and its address leaves DNS; resolves once discovery saw it. */
  async function leave(agent: SenderAgent, last: number, node: string): Promise<void> {
    const detached = waitFor(agent.discoveries[0]!, 'detached', (name: string) => name === node);
    await receivers.get(`127.0.0.${last}`)!.close();
    answer = (answer as string[]).filter((a) => a !== `127.0.0.${last}`);
    await detached;
  }

  /** The same node (same --node, same --dir) restarts at a NEW address 127.0.0.<last> and enters DNS; resolves once discovery retargeted it. */
  async function comeBackAt(agent: SenderAgent, oldLast: number, last: number, node: string): Promise<TestReceiver> {
    const returned = waitFor(agent.discoveries[0]!, 'returned', (name: string, address: string) => name === node && address === `127.0.0.${last}`);
    const r = await startReceiver({ host: `127.0.0.${last}`, port, node, dir: receivers.get(`127.0.0.${oldLast}`)!.dir });
    receivers.set(`127.0.0.${last}`, r);
    answer = [...(answer as string[]), `127.0.0.${last}`];
    await returned;
    return r;
  }

  it('keeps a receiver whose address left DNS as disconnected and in --to all; a send started meanwhile completes once it is back at a new address', async () => {
    answer = ['127.0.0.2', '127.0.0.3'];
    const agent = await startDiscoveringAgent(testLogger('agent'), 30_000);
    await leave(agent, 2, 'node2');

    const row = (await fetchStatus(agent.options.socketPath)).receivers.find((r) => r.name === 'node2');
    expect(row).to.include({ state: 'disconnected', url: `http://127.0.0.2:${port}` });
    expect(row!.lastError).to.include({ code: ErrorCode.UNREACHABLE });
    expect(row!.lastError!.message).to.contain('left DNS').and.to.contain('no longer in DNS');

    const f = await randomFile(src, 700_000, 'while-away.bin');
    const events: JobEvent[] = [];
    let job!: Promise<boolean>;
    // --to all includes node2 while it is away: node3 gets the file now, node2's transfer waits.
    const node3Done = new Promise<void>((resolve) => {
      job = sendViaAgent({ socketPath: agent.options.socketPath, paths: [f.path], to: ['all'], transfer: { timeoutMs: 60_000 } }, (e) => {
        events.push(e);
        if (e.type === 'received' && e.target === 'node3') resolve();
      });
      track(() => job.catch(() => undefined));
    });
    await node3Done;
    const back = await comeBackAt(agent, 2, 7, 'node2');
    expect(await job, JSON.stringify(events.filter((e) => e.type === 'failed'))).to.equal(true);
    const targets = events.filter((e): e is Extract<JobEvent, { type: 'received' }> => e.type === 'received').map((e) => e.target).sort();
    expect(targets).to.deep.equal(['node2', 'node3']);
    expect(await sha256File(path.join(back.dir, 'while-away.bin'))).to.equal(f.sha256);
    const now = (await fetchStatus(agent.options.socketPath)).receivers.find((r) => r.name === 'node2');
    expect(now).to.include({ state: 'connected', url: `http://127.0.0.7:${port}`, node: 'node2' });
    expect(await names(agent)).to.deep.equal(['node2', 'node3']);
  });

  it('completes a transfer in flight while its receiver leaves DNS and comes back at a new address, byte-identical', async () => {
    answer = ['127.0.0.2', '127.0.0.3'];
    const agent = await startDiscoveringAgent(testLogger('agent'), 30_000);
    const f = await randomFile(src, 6 * MiB, 'moving.bin');
    const events: JobEvent[] = [];
    let done!: Promise<boolean>;
    const progressed = new Promise<void>((resolve) => {
      done = sendViaAgent({
        socketPath: agent.options.socketPath, paths: [f.path], to: ['node2'],
        // Paced so it is still running when its receiver goes.
        transfer: { bwlimit: 1 * MiB, timeoutMs: 60_000, chunkSize: 256 * 1024 },
      }, (e) => {
        events.push(e);
        if (e.type === 'progress') resolve();
      });
      track(() => done.catch(() => undefined));
    });
    await progressed;
    await leave(agent, 2, 'node2');
    const back = await comeBackAt(agent, 2, 8, 'node2');
    expect(await done, JSON.stringify(events.filter((e) => e.type === 'failed'))).to.equal(true);
    expect(await sha256File(path.join(back.dir, 'moving.bin'))).to.equal(f.sha256);
    // It went on from the partial the restarted receiver kept (same --dir), not from byte 0.
    const received = events.find((e): e is Extract<JobEvent, { type: 'received' }> => e.type === 'received');
    expect(received!.resumedFrom).to.be.greaterThan(0);
  });

  it('after the grace without return, fails the transfers in flight and waiting with UNREACHABLE and drops the receiver from status', async () => {
    answer = ['127.0.0.2', '127.0.0.3'];
    // The grace only has to outlast starting the second send below (a few ms), on a loaded machine too.
    const agent = await startDiscoveringAgent(testLogger('agent'), 3000);
    const f = await randomFile(src, 8 * MiB, 'slow.bin');
    const events: JobEvent[] = [];
    let inFlight!: Promise<boolean>;
    const progressed = new Promise<void>((resolve) => {
      inFlight = sendViaAgent({
        socketPath: agent.options.socketPath, paths: [f.path], to: ['node2'],
        // Paced so it is still running when its receiver leaves; the 10-minute timeout must not be what ends it.
        transfer: { bwlimit: 1 * MiB, timeoutMs: 600_000, chunkSize: 256 * 1024 },
      }, (e) => {
        events.push(e);
        if (e.type === 'progress') resolve();
      });
      track(() => inFlight.catch(() => undefined));
    });
    await progressed;
    const removed = waitFor(agent.discoveries[0]!, 'removed', (name: string) => name === 'node2');
    await leave(agent, 2, 'node2');
    // Started while node2 is away: it waits for node2 (within the grace).
    const small = await randomFile(src, 1000, 'later.bin');
    const waitingEvents: JobEvent[] = [];
    const waiting = sendViaAgent({ socketPath: agent.options.socketPath, paths: [small.path], to: ['node2'], transfer: { timeoutMs: 600_000 } }, (e) => waitingEvents.push(e));
    track(() => waiting.catch(() => undefined));
    await removed;
    expect(await inFlight).to.equal(false);
    expect(await waiting).to.equal(false);
    for (const evs of [events, waitingEvents]) {
      const failed = evs.find((e): e is Extract<JobEvent, { type: 'failed' }> => e.type === 'failed');
      expect(failed).to.include({ target: 'node2', code: ErrorCode.UNREACHABLE });
      expect(failed!.message).to.contain('left').and.to.contain('did not come back');
    }
    expect(await names(agent)).to.deep.equal(['node3']);
  });

  it('keeps two addresses that report the same node name as two receivers, and says so', async () => {
    const twin = await receiverAt(5, 'node2');
    answer = ['127.0.0.2', '127.0.0.5'];
    const log = captureLogger('info');
    const agent = await startDiscoveringAgent(log.logger);
    expect(await names(agent)).to.deep.equal(['node2', 'node2@127.0.0.5']);
    expect(log.text()).to.contain('two addresses report the same node name; this one is node2@127.0.0.5');
    const f = await randomFile(src, 100_000, 'twin.bin');
    const res = await runBin(BIN.relay, ['send', f.path, '--to', 'all'], { env: { RELAY_SOCKET: agent.options.socketPath } });
    expect(res.code, res.stdout + res.stderr).to.equal(0);
    expect(res.stdout).to.contain('on node2@127.0.0.5 → node2:');
    expect(await sha256File(path.join(twin.dir, 'twin.bin'))).to.equal(f.sha256);
    expect(await sha256File(path.join(receivers.get('127.0.0.2')!.dir, 'twin.bin'))).to.equal(f.sha256);
  });

  it('renames a receiver whose address now answers with another node name (its heartbeats say so)', async () => {
    answer = ['127.0.0.2', '127.0.0.3'];
    const agent = await startDiscoveringAgent();
    const removed = waitFor(agent.discoveries[0]!, 'removed', (name: string) => name === 'node3');
    const added = waitFor(agent.discoveries[0]!, 'added', (name: string, address: string) => name === 'node9' && address === '127.0.0.3');
    // Another receiver takes over the address (a task rescheduled, its address reused).
    await receivers.get('127.0.0.3')!.close();
    await receiverAt(3, 'node9');
    await Promise.all([removed, added]);
    expect(await names(agent)).to.deep.equal(['node2', 'node9']);
  });

  it('shows an address that does not answer yet in status, and adds it once its receiver is up', async () => {
    answer = ['127.0.0.2', '127.0.0.6'];
    const agent = await startDiscoveringAgent();
    const pending = (await fetchStatus(agent.options.socketPath)).receivers.find((r) => r.name === '127.0.0.6');
    expect(pending).to.include({ state: 'disconnected', url: `http://127.0.0.6:${port}` });
    expect(pending!.lastError!.message).to.contain('not identified yet');
    const added = waitFor(agent.discoveries[0]!, 'added', (name: string) => name === 'node6');
    await receiverAt(6, 'node6');
    await added;
    expect(await names(agent)).to.deep.equal(['node2', 'node6']);
  });

  it('keeps its receivers when the resolver fails, and drops them all when the name has no address (ENOTFOUND)', async () => {
    answer = ['127.0.0.2', '127.0.0.3'];
    const agent = await startDiscoveringAgent();
    answer = Object.assign(new Error('queryA EAI_AGAIN tasks.receiver'), { code: 'EAI_AGAIN' });
    // Two failed lookups: the second starts only after the first round is over.
    let calls = 0;
    await waitFor(dns, 'called', () => ++calls === 2);
    expect(await names(agent)).to.deep.equal(['node2', 'node3']);
    expect((await fetchStatus(agent.options.socketPath)).receivers.every((r) => r.state === 'connected')).to.equal(true);
    answer = Object.assign(new Error('getaddrinfo ENOTFOUND tasks.receiver'), { code: 'ENOTFOUND' });
    let removed = 0;
    await waitFor(agent.discoveries[0]!, 'removed', () => ++removed === 2);
    expect(await names(agent)).to.deep.equal([]);
  });
});

describe('relay-sender --discover (the real bin, the system resolver)', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  it('discovers a receiver behind "localhost" and names it by its node', async () => {
    const r = await startReceiver({ host: '127.0.0.1', port: 0, node: 'lh-node' });
    const src = await tmpDir('relay-src-');
    const agent = await startAgent({ receivers: {}, allowRoots: [src], extraArgs: ['--discover', `localhost:${r.address().port}`, '--discover-every', '1s'] });
    await agent.waitLog('receiver discovered', (l) => l.receiver === 'lh-node');
    await agent.waitLog('heartbeat', (l) => l.receiver === 'lh-node');
    const status = JSON.parse((await agent.relay(['status', '--json'])).stdout) as { receivers: { name: string; state: string; node: string }[] };
    expect(status.receivers.find((x) => x.name === 'lh-node')).to.include({ state: 'connected', node: 'lh-node' });
  });

  for (const bad of ['tasks.receiver', 'tasks.receiver:', 'tasks.receiver:port', 'http://x:7420']) {
    it(`exits 2 for --discover ${bad}`, async () => {
      const res = await runBin(BIN.sender, ['--discover', bad, '--socket', path.join(await tmpDir(), 's.sock')], { env: { RELAY_TOKEN: TOKEN } });
      expect(res.code).to.equal(2);
      expect(res.stderr).to.contain('--discover wants <dns name>:<port>');
    });
  }
});
