import { once } from 'node:events';
import { expect } from 'chai';
import { Packr } from 'msgpackr';
import type { Socket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { ErrorCode, FRAME_OVERHEAD, MAX_CHUNK_SIZE, PacketType, PROTOCOL_VERSION, type Reply } from '@relayer/common';
import {
  closeAll, connectedLink, randomFile, rawClient, send, sha256File, startReceiver, tmpDir, TOKEN, track, waitFor, type TestReceiver,
} from '../support/util.js';

const packr = new Packr({ useRecords: false });

interface RawPeer {
  ws: WebSocket;
  /** The engine.io open packet's JSON. */
  open: { sid: string; upgrades: string[]; pingInterval: number; pingTimeout: number };
  closed: Promise<unknown>;
}

/** A bare websocket speaking engine.io v4 to the receiver: waits for the server's text open packet "0{...}". */
async function rawPeer(r: TestReceiver): Promise<RawPeer> {
  const ws = new WebSocket(`ws://127.0.0.1:${r.address().port}/socket.io/?EIO=4&transport=websocket`);
  track(() => ws.terminate());
  const closed = once(ws, 'close');
  closed.catch(() => undefined);
  const [first, isBinary] = (await waitFor(ws, 'message')) as [Buffer, boolean];
  expect(isBinary).to.equal(false);
  const text = first.toString('utf8');
  expect(text[0]).to.equal('0');
  return { ws, open: JSON.parse(text.slice(1)) as RawPeer['open'], closed };
}

/** Connects the raw peer to the "/" namespace with the token, as socket.io-client would (one msgpack message). */
async function authenticate(peer: RawPeer): Promise<void> {
  peer.ws.send(packr.pack({ type: PacketType.CONNECT, nsp: '/', data: { token: TOKEN, protocol: PROTOCOL_VERSION } }));
  const [reply, isBinary] = (await waitFor(peer.ws, 'message')) as [Buffer, boolean];
  expect(isBinary).to.equal(true);
  const packet = packr.unpack(reply) as { type: number; nsp: string; data: { sid?: string } };
  expect(packet.type).to.equal(PacketType.CONNECT);
  expect(packet.data.sid).to.be.a('string');
}

/** After abuse, the receiver still answers /healthz and still takes a normal send. */
async function expectStillServing(r: TestReceiver): Promise<void> {
  const res = await fetch(`${r.url}/healthz`);
  expect(res.status).to.equal(200);
  expect(((await res.json()) as { status: string }).status).to.equal('ok');
  const f = await randomFile(await tmpDir(), 64 * 1024 + 3);
  const sent = await send([f.path], [r.url], { as: 'after-abuse.bin' });
  expect(sent.ok).to.equal(true);
  expect(await sha256File(`${r.dir}/after-abuse.bin`)).to.equal(f.sha256);
}

describe('malformed input: a bad peer loses its own connection, never the receiver', () => {
  afterEach(closeAll);

  it('speaks engine.io v4 over a bare websocket (open packet first, websocket only)', async () => {
    const r = await startReceiver();
    const peer = await rawPeer(r);
    expect(peer.open.sid).to.be.a('string');
    expect(peer.open.upgrades).to.deep.equal([]);
    await authenticate(peer);
  });

  const beforeAuth: Array<[string, string | Buffer]> = [
    ['a text message where a binary packet is expected ("40")', '40'],
    ['text that is not engine.io at all', 'this is not a packet'],
    ['binary garbage before authenticating', Buffer.from([0x92, 0x01, 0xff, 0xfe])],
  ];
  for (const [what, message] of beforeAuth) {
    it(`closes a connection that sends ${what}`, async () => {
      const r = await startReceiver();
      const peer = await rawPeer(r);
      peer.ws.send(message);
      await peer.closed;
      await expectStillServing(r);
    });
  }

  it('closes an authenticated connection that sends bytes that are not msgpack, and only that one', async () => {
    const r = await startReceiver();
    const bystander = await connectedLink(r.url);
    const peer = await rawPeer(r);
    await authenticate(peer);
    peer.ws.send(Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x00]));
    await peer.closed;
    // The other sender's connection is untouched: it still gets answers.
    const status = await bystander.request('heartbeat', { seq: 1, sentAt: Date.now() }, 5000);
    expect(status.seq).to.equal(1);
    await expectStillServing(r);
  });

  it('closes an authenticated connection that sends msgpack of the wrong shape', async () => {
    const r = await startReceiver();
    const peer = await rawPeer(r);
    await authenticate(peer);
    peer.ws.send(packr.pack({ type: PacketType.EVENT, nsp: '/', data: 'offer' }));
    await peer.closed;
    await expectStillServing(r);
  });

  it('closes an authenticated connection that sends a message over the largest chunk plus envelope', async () => {
    const r = await startReceiver();
    const peer = await rawPeer(r);
    await authenticate(peer);
    peer.ws.send(Buffer.alloc(MAX_CHUNK_SIZE + FRAME_OVERHEAD + 1));
    await peer.closed;
    await expectStillServing(r);
  });

  for (const [event, arg] of [['error', null], ['disconnect', 'spoofed'], ['newListener', 'x']] as const) {
    it(`closes an authenticated connection that fires the reserved event "${event}" instead of running its handler`, async () => {
      const r = await startReceiver();
      const peer = await rawPeer(r);
      await authenticate(peer);
      peer.ws.send(packr.pack({ type: PacketType.EVENT, nsp: '/', data: [event, arg] }));
      await peer.closed;
      await expectStillServing(r);
    });
  }

  describe('well-formed packets carrying malformed frames', () => {
    const client = async (r: TestReceiver): Promise<Socket> => (await rawClient(r.url)).socket;

    const cases: Array<[string, string, unknown]> = [
      ['an offer whose name is not a string', 'offer', { name: 5, size: 1, mtimeMs: 1 }],
      ['an offer without a size', 'offer', { name: 'a.bin', mtimeMs: 1 }],
      ['an offer that is a bare string', 'offer', 'a.bin'],
      ['a chunk whose data is a string', 'chunk', { lease: 't', offset: 0, crc: 0, data: 'bytes' }],
      ['a chunk with a negative offset', 'chunk', { lease: 't', offset: -1, crc: 0, data: Buffer.from('x') }],
      ['a commit with a malformed sha256', 'commit', { lease: 't', sha256: 'xyz' }],
      ['a heartbeat without a sequence number', 'heartbeat', { sentAt: 1 }],
    ];
    for (const [what, event, frame] of cases) {
      it(`answers ${what} with a PROTOCOL error and keeps the connection`, async () => {
        const r = await startReceiver();
        const socket = await client(r);
        const reply = (await socket.timeout(5000).emitWithAck(event, frame)) as Reply<object>;
        expect(reply.ok).to.equal(false);
        expect(reply.ok === false && reply.error.code).to.equal(ErrorCode.PROTOCOL);
        expect(socket.connected).to.equal(true);
        const beat = (await socket.timeout(5000).emitWithAck('heartbeat', { seq: 9, sentAt: Date.now() })) as Reply<{ seq: number }>;
        expect(beat.ok && beat.seq).to.equal(9);
      });
    }

    it('disconnects a sender that makes a request without an ack callback', async () => {
      const r = await startReceiver();
      const socket = await client(r);
      const disconnected = new Promise<string>((resolve) => socket.once('disconnect', resolve));
      socket.emit('offer', { name: 'a.bin', size: 1, mtimeMs: 1 });
      expect(await disconnected).to.equal('io server disconnect');
      await expectStillServing(r);
    });

    it('ignores a malformed abort (no reply expected) and keeps the connection', async () => {
      const r = await startReceiver();
      const socket = await client(r);
      socket.emit('abort', { lease: 42 });
      const beat = (await socket.timeout(5000).emitWithAck('heartbeat', { seq: 1, sentAt: Date.now() })) as Reply<{ seq: number }>;
      expect(beat.ok).to.equal(true);
      expect(socket.connected).to.equal(true);
    });
  });
});
