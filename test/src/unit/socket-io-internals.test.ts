/**
 * What the two Socket.IO adapters rely on inside socket.io / engine.io, each checked on a real connection
 * to a real receiver, so that an upgrade that changes one fails here, by name, and not as a slow or
 * corrupt transfer somewhere else. Sender: agent-sender/src/link/receiver-socket.ts.
 */
import net from 'node:net';
import { expect } from 'chai';
import { PROTOCOL_VERSION, VERSION } from '@relayer/common';
import { ReceiverSocket, type ReceiverSocketHandlers } from '@relayer/agent-sender';
import { closeAll, eventually, startReceiver, TOKEN, track } from '../support/util.js';

/** A TCP relay to `port` that keeps every byte the client sent. */
async function tap(port: number): Promise<{ url: string; sent: () => Buffer }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d) => chunks.push(Buffer.from(d)));
    client.pipe(upstream).pipe(client);
    const end = (): void => { client.destroy(); upstream.destroy(); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  track(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, sent: () => Buffer.concat(chunks) };
}

/** The client's websocket frames after the HTTP upgrade: [masked, maskKey] of each. */
function clientFrames(bytes: Buffer): Array<{ masked: boolean; key: Buffer }> {
  let at = bytes.indexOf('\r\n\r\n');
  expect(at, 'an HTTP upgrade request').to.be.greaterThan(0);
  at += 4;
  const frames: Array<{ masked: boolean; key: Buffer }> = [];
  while (at + 2 <= bytes.length) {
    const masked = (bytes[at + 1]! & 0x80) !== 0;
    let len = bytes[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) { len = bytes.readUInt16BE(at + 2); head = 4; }
    else if (len === 127) { len = Number(bytes.readBigUInt64BE(at + 2)); head = 10; }
    const key = masked ? bytes.subarray(at + head, at + head + 4) : Buffer.alloc(0);
    frames.push({ masked, key });
    at += head + (masked ? 4 : 0) + len;
  }
  return frames;
}

function socketTo(url: string, on: Partial<ReceiverSocketHandlers> = {}): ReceiverSocket {
  const s = new ReceiverSocket(url, {
    auth: { token: TOKEN, protocol: PROTOCOL_VERSION, sender: 'internals-test', version: VERSION }, reconnectDelayMs: 50, reconnectDelayMaxMs: 200,
  }, { connect: () => undefined, disconnect: () => undefined, connectError: () => undefined, received: () => undefined, ...on });
  track(() => s.disconnect());
  return s;
}

const beat = { seq: 0, sentAt: Date.now() };

describe('Socket.IO internals the sender relies on (receiver-socket.ts)', () => {
  afterEach(closeAll);

  it('frames go out with an all-zero masking key (engine.io-client NodeWebSocket.createSocket + ws generateMask)', async () => {
    const r = await startReceiver();
    const t = await tap(r.address().port);
    const s = socketTo(t.url);
    s.connect();
    await eventually(() => s.connected, 'connected');
    const reply = await s.ask('heartbeat', beat, 5000);
    expect(reply.ok).to.equal(true);
    const frames = clientFrames(t.sent());
    expect(frames.length, 'websocket frames sent').to.be.greaterThan(1);
    for (const f of frames) {
      expect(f.masked, 'a client frame is masked (RFC 6455)').to.equal(true);
      expect(f.key.toString('hex'), 'its key').to.equal('00000000');
    }
  });

  it('forgetQueued() drops what was emitted while disconnected (Socket#sendBuffer), which would otherwise go out on connect', async () => {
    const r = await startReceiver();
    for (const forget of [false, true]) {
      const t = await tap(r.address().port);
      const s = socketTo(t.url);
      s.notify('abort', { lease: 'queued-while-down' });
      if (forget) s.forgetQueued();
      s.connect();
      await eventually(() => s.connected, 'connected');
      // Queued packets are flushed on connect, before anything emitted after it.
      await s.ask('heartbeat', beat, 5000);
      expect(t.sent().includes('queued-while-down'), forget ? 'forgotten' : 'queued and sent (what forgetting prevents)').to.equal(!forget);
      s.disconnect();
    }
  });

  it('dropTransport() closes the engine only (Manager#engine): the socket reconnects by itself', async () => {
    const r = await startReceiver();
    let connects = 0;
    const reasons: string[] = [];
    const s = socketTo(r.url, { connect: () => void connects++, disconnect: (why) => void reasons.push(why) });
    s.connect();
    await eventually(() => connects === 1, 'first connect');
    s.dropTransport();
    await eventually(() => connects === 2, 'reconnected after the transport was dropped');
    expect(reasons, 'one disconnect on the way').to.have.length(1);
  });

  it('ask() resolves with the ack, and rejects when none comes in time (Socket#timeout().emitWithAck)', async () => {
    const r = await startReceiver();
    const s = socketTo(r.url);
    s.connect();
    await eventually(() => s.connected, 'connected');
    expect((await s.ask('heartbeat', beat, 5000)).ok).to.equal(true);
    // A receiver acks only the requests it knows.
    let failed: unknown;
    await s.ask('no-such-request', {}, 200).catch((err: unknown) => (failed = err));
    expect(failed, 'rejected for want of an ack').to.be.instanceOf(Error);
    expect(s.connected).to.equal(true);
  });
});
