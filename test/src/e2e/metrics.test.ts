import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode } from '@relayer/common';
import { SenderAgent, sendViaAgent, type AgentHealth, type JobEvent } from '@relayer/agent-sender';
import { startAgent } from '../support/agent.js';
import { count, sample, scrape } from '../support/metrics.js';
import {
  closeAll, connectedLink, eventually, MiB, randomFile, send, startReceiver, testLogger, tmpDir, TOKEN, track,
} from '../support/util.js';


describe('receiver GET /metrics (Prometheus text)', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  it('counts the bytes and the transfer of a real send, its duration, and an unchanged re-send', async () => {
    const r = await startReceiver();
    const other = await startReceiver();
    const f = await randomFile(await tmpDir(), 3 * MiB + 17, 'metered.bin');
    const before = await scrape(r.url);
    expect(count(before, 'relay_receiver_bytes_received_total')).to.equal(0);

    expect((await send([f.path], [r.url])).ok).to.equal(true);
    const after = await scrape(r.url);
    expect(sample(after, 'relay_receiver_bytes_received_total')).to.equal(f.size);
    expect(sample(after, 'relay_receiver_transfers_total', { outcome: 'published', code: 'none' })).to.equal(1);
    expect(sample(after, 'relay_receiver_transfer_duration_seconds_count')).to.equal(1);
    expect(sample(after, 'relay_receiver_transfer_duration_seconds_sum')).to.be.greaterThan(0);
    expect(sample(after, 'relay_receiver_free_bytes')).to.be.greaterThan(0);

    expect((await send([f.path], [r.url])).received[0]).to.include({ unchanged: true });
    const again = await scrape(r.url);
    expect(sample(again, 'relay_receiver_bytes_received_total')).to.equal(f.size);
    expect(sample(again, 'relay_receiver_transfers_total', { outcome: 'unchanged', code: 'none' })).to.equal(1);
    expect(sample(again, 'relay_receiver_transfers_total', { outcome: 'published', code: 'none' })).to.equal(1);

    // Each receiver has its own registry, even in one process; the process metrics are in both.
    const otherText = await scrape(other.url);
    expect(count(otherText, 'relay_receiver_bytes_received_total')).to.equal(0);
    for (const text of [again, otherText]) expect(sample(text, 'process_cpu_user_seconds_total')).to.be.greaterThan(0);
    // Nothing that names a file, a path or the token.
    for (const secret of [TOKEN, 'metered.bin', r.dir]) expect(again).to.not.contain(secret);
  });

  it('counts refusals by code, and shows connected senders and active transfers', async () => {
    const r = await startReceiver({ maxFileSize: 1000 });
    const f = await randomFile(await tmpDir(), 1001);
    // Offered (and refused at the offer), then sent whole in a put (and refused in its result).
    const offered = await send([f.path], [r.url], { transfer: { smallFileMax: 0 } });
    expect(offered.failed[0]).to.include({ code: ErrorCode.TOO_LARGE });
    const whole = await send([f.path], [r.url]);
    expect(whole.failed[0]).to.include({ code: ErrorCode.TOO_LARGE });
    const link = await connectedLink(r.url);
    const text = await scrape(r.url);
    expect(sample(text, 'relay_receiver_transfers_total', { outcome: 'refused', code: 'TOO_LARGE' })).to.equal(2);
    expect(sample(text, 'relay_receiver_request_errors_total', { request: 'offer', code: 'TOO_LARGE' })).to.equal(1);
    expect(sample(text, 'relay_receiver_request_errors_total', { request: 'put', code: 'TOO_LARGE' })).to.equal(1);
    expect(sample(text, 'relay_receiver_connected_senders')).to.equal(1);
    expect(sample(text, 'relay_receiver_active_transfers')).to.equal(0);
    link.close();
  });

  it('answers 404 for other paths; /healthz is unchanged', async () => {
    const r = await startReceiver({ node: 'metrics-node' });
    expect((await fetch(`${r.url}/metric`)).status).to.equal(404);
    const health = (await (await fetch(`${r.url}/healthz`)).json()) as { status: string; node: string };
    expect(health).to.include({ status: 'ok', node: 'metrics-node' });
  });
});

describe('sender agent --http: /healthz and /metrics', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  async function startAgentWithHttp(receivers: { name: string; url: string }[], allowRoots: string[]): Promise<{ agent: SenderAgent; base: string }> {
    const agent = new SenderAgent({
      socketPath: path.join(await tmpDir('relay-agent-'), 'agent.sock'), receivers, allowRoots, heartbeatMs: 100,
      http: { host: '127.0.0.1', port: 0 }, token: TOKEN, logger: testLogger('agent'),
    });
    await agent.start();
    track(() => agent.close());
    return { agent, base: `http://127.0.0.1:${agent.httpAddress()!.port}` };
  }

  it('/healthz reports the receivers and how many are connected', async () => {
    const r = await startReceiver();
    const { agent, base } = await startAgentWithHttp([{ name: 'a', url: r.url }, { name: 'down', url: 'http://127.0.0.1:1' }], []);
    await agent.links.get('a')!.ready(10_000);
    const res = await fetch(`${base}/healthz`);
    expect(res.status).to.equal(200);
    const body = (await res.json()) as AgentHealth;
    expect(body).to.include({ status: 'ok', receivers: 2, connected: 1, activeTransfers: 0 });
    expect((await fetch(`${base}/nothing`)).status).to.equal(404);
  });

  it('/metrics counts bytes sent and transfers by receiver, outcome and code; shows link states and heartbeat RTT', async () => {
    const a = await startReceiver();
    const small = await startReceiver({ maxFileSize: 1000 });
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 2 * MiB + 3, 'metered.bin');
    const { agent, base } = await startAgentWithHttp([{ name: 'a', url: a.url }, { name: 'small', url: small.url }], [src]);
    for (const l of agent.links.values()) await l.ready(10_000);

    const events: JobEvent[] = [];
    const ok = await sendViaAgent({ socketPath: agent.options.socketPath, paths: [f.path], to: ['all'], transfer: {} }, (e) => events.push(e));
    expect(ok).to.equal(false);
    expect(events.find((e) => e.type === 'failed')).to.include({ target: 'small', code: ErrorCode.TOO_LARGE });
    // The first heartbeat goes out on connect; wait (bounded) until its answer is in.
    await eventually(() => agent.links.get('a')!.rttMs !== null, 'a heartbeat RTT measured');

    const text = await scrape(base);
    expect(sample(text, 'relay_sender_bytes_sent_total', { receiver: 'a' })).to.equal(f.size);
    expect(count(text, 'relay_sender_bytes_sent_total', { receiver: 'small' })).to.equal(0);
    expect(sample(text, 'relay_sender_transfers_total', { receiver: 'a', outcome: 'confirmed', code: 'none' })).to.equal(1);
    expect(sample(text, 'relay_sender_transfers_total', { receiver: 'small', outcome: 'failed', code: 'TOO_LARGE' })).to.equal(1);
    expect(sample(text, 'relay_sender_transfer_duration_seconds_count', { receiver: 'a' })).to.equal(1);
    expect(sample(text, 'relay_sender_receivers', { state: 'connected' })).to.equal(2);
    expect(sample(text, 'relay_sender_receivers', { state: 'disconnected' })).to.equal(0);
    expect(sample(text, 'relay_sender_receiver_up', { receiver: 'a' })).to.equal(1);
    expect(sample(text, 'relay_sender_active_transfers')).to.equal(0);
    expect(sample(text, 'relay_sender_heartbeat_rtt_seconds', { receiver: 'a' })).to.be.at.least(0);
    expect(sample(text, 'process_resident_memory_bytes')).to.be.greaterThan(0);
    for (const secret of [TOKEN, 'metered.bin', src]) expect(text).to.not.contain(secret);

    // An unchanged re-send confirms without sending bytes: the counter must not move.
    expect(await sendViaAgent({ socketPath: agent.options.socketPath, paths: [f.path], to: ['a'], transfer: {} }, () => undefined)).to.equal(true);
    const again = await scrape(base);
    expect(sample(again, 'relay_sender_bytes_sent_total', { receiver: 'a' })).to.equal(f.size);
    expect(sample(again, 'relay_sender_transfers_total', { receiver: 'a', outcome: 'unchanged', code: 'none' })).to.equal(1);
  });

  it('the real bin serves /healthz on --http', async () => {
    const r = await startReceiver();
    const agent = await startAgent({ receivers: { a: r.url }, allowRoots: [], extraArgs: ['--http', '127.0.0.1:0'] });
    const [started] = await agent.waitLog('http listener for /healthz and /metrics started');
    const res = await fetch(`http://127.0.0.1:${started.port as number}/healthz`);
    expect(res.status).to.equal(200);
    expect(await res.json()).to.include({ status: 'ok', receivers: 1 });
  });
});
