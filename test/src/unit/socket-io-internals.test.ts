/**
 * What the two Socket.IO adapters rely on inside socket.io / engine.io, each checked on a real connection
 * to a real receiver, so that an upgrade that changes one fails here, by name, and not as a slow or
 * corrupt transfer somewhere else. Sender: agent-sender/src/link/receiver-socket.ts; receiver:
 * agent-receiver/src/session/sender-socket.ts.
 */
import { createServer } from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import { PROTOCOL_VERSION, VERSION } from '@relayer/common';
import { ReceiverSocket, type ReceiverSocketHandlers } from '@relayer/agent-sender';
import { createSocketServer, SenderSocket } from '@relayer/agent-receiver';
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

describe('Socket.IO internals the receiver relies on (sender-socket.ts)', () => {
  afterEach(closeAll);

  /** A bare Socket.IO server made as the receiver makes it, answering heartbeats through SenderSocket. */
  async function server(): Promise<{ url: string; sockets: SenderSocket[] }> {
    const http = createServer();
    const io = createSocketServer(http, { pingIntervalMs: 25_000, pingTimeoutMs: 20_000, onMalformed: () => undefined });
    const sockets: SenderSocket[] = [];
    io.on('connection', (raw) => {
      const s = new SenderSocket(raw);
      sockets.push(s);
      s.onRequest('heartbeat', (_frame, ack) => (ack as (r: object) => void)({ ok: true }));
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    track(() => new Promise<void>((resolve) => io.close(() => resolve())));
    return { url: `http://127.0.0.1:${(http.address() as net.AddressInfo).port}`, sockets };
  }

  it('pauseReading() stops reading from the connection (engine transport\'s websocket pause/resume) and resumes it', async () => {
    const srv = await server();
    const client = socketTo(srv.url);
    client.connect();
    await eventually(() => client.connected && srv.sockets.length === 1, 'connected');
    expect((await client.ask('heartbeat', beat, 5000)).ok).to.equal(true);
    const s = srv.sockets[0]!;
    expect(s.pauseReading(true), 'a websocket to pause').to.equal(true);
    let failed: unknown;
    await client.ask('heartbeat', beat, 300).catch((err: unknown) => (failed = err));
    expect(failed, 'no answer while reads are paused').to.be.instanceOf(Error);
    expect(s.pauseReading(false)).to.equal(true);
    expect((await client.ask('heartbeat', beat, 5000)).ok, 'answered once reads resume').to.equal(true);
  });

  it('hands each request its frame and ack untyped, and disconnect() ends the connection', async () => {
    const srv = await server();
    const reasons: string[] = [];
    const client = socketTo(srv.url, { disconnect: (why) => void reasons.push(why) });
    client.connect();
    await eventually(() => client.connected && srv.sockets.length === 1, 'connected');
    const s = srv.sockets[0]!;
    const seen: unknown[] = [];
    s.onRequest('anything', (frame, ack) => {
      seen.push(frame, typeof ack);
      (ack as (r: object) => void)({ ok: true, echo: frame });
    });
    expect(await client.ask('anything', { n: 1 }, 5000)).to.deep.equal({ ok: true, echo: { n: 1 } });
    expect(seen).to.deep.equal([{ n: 1 }, 'function']);
    expect(s.handshake.auth.sender).to.equal('internals-test');
    s.disconnect();
    await eventually(() => reasons.length === 1, 'the client saw the disconnect');
    expect(reasons[0]).to.equal('io server disconnect');
  });
});
