/**
 * Finding 9 and the handshake: every number and list a peer sends is bounded, and peers of different
 * protocol versions refuse each other with a message naming both.
 */
import { expect } from 'chai';
import { WebSocket } from 'ws';
import { ErrorCode, isErrorCode, msgpackParser, PROTOCOL_VERSION, type Reply } from '@relayer/common';
import { Link } from '@relayer/agent-sender';
import { startAgent } from '../support/agent.js';
import { closeAll, commitFile, randomFile, rawClient, send, startReceiver, testLogger, tmpDir, TOKEN, track, waitFor } from '../support/util.js';

async function control(socketPath: string, request: unknown): Promise<Record<string, unknown>> {
  const ws = new WebSocket(`ws+unix://${socketPath}:/control`);
  track(() => ws.terminate());
  await waitFor(ws, 'open');
  const reply = waitFor<[Buffer]>(ws, 'message');
  ws.send(JSON.stringify(request));
  const [msg] = await reply;
  return JSON.parse(String(msg)) as Record<string, unknown>;
}

describe('bounds: what a peer sends is checked before it is used', () => {
  afterEach(closeAll);

  it('refuses a heartbeat interval no timer can hold (PROTOCOL), with no TimeoutOverflowWarning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    track(() => process.off('warning', onWarning));
    const r = await startReceiver();
    const { socket } = await rawClient(r.url);
    const reply = (await socket.timeout(5000).emitWithAck('heartbeat', { seq: 1, sentAt: Date.now(), intervalMs: 1e15 })) as Reply<object>;
    expect(reply.ok).to.equal(false);
    expect(reply.ok === false && reply.error.code).to.equal(ErrorCode.PROTOCOL);
    const ok = (await socket.timeout(5000).emitWithAck('heartbeat', { seq: 2, sentAt: Date.now(), intervalMs: 1000 })) as Reply<object>;
    expect(ok.ok).to.equal(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).to.not.include('TimeoutOverflowWarning');
  });

  it('a receiver refuses a sender of another protocol version at the handshake, naming both versions', async () => {
    const r = await startReceiver();
    type ConnectError = Error & { data?: { code?: string; message?: string } };
    const err = await rawClient(r.url, { token: TOKEN, protocol: 1 }).then(() => undefined, (e: ConnectError) => e);
    expect(err?.data?.code).to.equal(ErrorCode.PROTOCOL);
    expect(err?.message).to.contain('v1').and.to.contain(`v${PROTOCOL_VERSION}`);
    // A v1 sender sent no protocol field at all: the same refusal.
    const legacyErr = await rawClient(r.url, { token: TOKEN }).then(() => undefined, (e: ConnectError) => e);
    expect(legacyErr?.data?.code).to.equal(ErrorCode.PROTOCOL);
  });

  /** A stand-in receiver answering each event with what `answers` says (a peer that may be wrong). */
  async function fakeReceiver(answers: Record<string, (frame: Record<string, unknown>) => unknown>): Promise<string> {
    const { Server } = await import('socket.io');
    const { createServer } = await import('node:http');
    const http = createServer();
    const server = new Server(http, { transports: ['websocket'], parser: msgpackParser });
    server.on('connection', (s) => {
      for (const [event, answer] of Object.entries(answers)) s.on(event, (f: Record<string, unknown>, ack: (r: unknown) => void) => ack(answer(f)));
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    track(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  }

  const beat = (protocol?: number) => (f: Record<string, unknown>) => ({
    ok: true, seq: f.seq, node: 'fake', version: '0', ...(protocol === undefined ? {} : { protocol }), freeBytes: 1, activeTransfers: 0, uptimeSec: 1,
  });

  it('a sender refuses a receiver that answers its first heartbeat as another protocol version, naming both', async () => {
    // Protocol v1 receivers answered beats without a protocol field.
    const url = await fakeReceiver({ heartbeat: beat() });
    const link = new Link({ name: 'old', url, token: TOKEN, logger: testLogger(), heartbeatMs: 0 }).start();
    track(() => link.close());
    const err = await link.ready(10_000).then(() => undefined, (e: unknown) => e);
    expect(err).to.have.property('code', ErrorCode.PROTOCOL);
    expect((err as Error).message).to.contain('v1').and.to.contain(`v${PROTOCOL_VERSION}`);
    expect(link.state).to.not.equal('connected');
  });

  it('a v4 sender refuses a v3 receiver (its first beat says protocol 3), naming both versions', async () => {
    const url = await fakeReceiver({ heartbeat: beat(3) });
    const link = new Link({ name: 'v3', url, token: TOKEN, logger: testLogger(), heartbeatMs: 0 }).start();
    track(() => link.close());
    const err = await link.ready(10_000).then(() => undefined, (e: unknown) => e);
    expect(err).to.have.property('code', ErrorCode.PROTOCOL);
    expect((err as Error).message).to.contain('v3').and.to.contain(`v${PROTOCOL_VERSION}`);
  });

  it('an ack is not a confirmation: a commit acked without its "received" fails the send with PROTOCOL', async () => {
    const src = await tmpDir('relay-src-');
    // Over --small-max: offered, sent in a chunk and committed.
    const f = await randomFile(src, 300_000, 'x.bin');
    const url = await fakeReceiver({
      heartbeat: beat(PROTOCOL_VERSION),
      offer: () => ({ ok: true, lease: 'fake-lease', offset: 0, tookOver: false }),
      chunk: (frame) => ({ ok: true, offset: (frame.offset as number) + (frame.data as Uint8Array).length, taken: true }),
      // A receiver that would have the sender believe it, without ever saying "received".
      commit: () => ({ ok: true }),
    });
    const res = await send([f.path], [url]);
    expect(res.ok).to.equal(false);
    expect(res.received).to.have.length(0);
    expect(res.failed.map((e) => [e.code, e.message])).to.deep.equal([[ErrorCode.PROTOCOL, `receiver ${url} acked the commit without a "received" confirmation`]]);
  });

  it('a receiver offering to resume past the end of the file is refused (PROTOCOL) before anything is read for it', async () => {
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 300_000, 'x.bin');
    let chunks = 0;
    const url = await fakeReceiver({
      heartbeat: beat(PROTOCOL_VERSION),
      offer: () => ({ ok: true, lease: 'fake-lease', offset: 300_001, prefixSha256: 'a'.repeat(64), tookOver: false }),
      chunk: () => (chunks++, { ok: true, offset: 0, taken: false }),
    });
    const res = await send([f.path], [url]);
    expect(res.ok).to.equal(false);
    expect(chunks).to.equal(0);
    expect(res.failed.map((e) => [e.code, e.message])).to.deep.equal([[ErrorCode.PROTOCOL, `receiver ${url} offered to resume x.bin at 300001, past its 300000 bytes`]]);
  });

  it('a sender validates replies like requests: a malformed reply or an unknown error code is PROTOCOL', async () => {
    const url = await fakeReceiver({
      heartbeat: beat(PROTOCOL_VERSION),
      // v1's shape: "transfer" instead of "lease".
      offer: () => ({ ok: true, transfer: 't', offset: 0 }),
      chunk: () => ({ ok: false, error: { code: 'EMFILE', message: 'too many open files' } }),
      commit: () => ({ ok: true, lease: 't', name: 'x', size: -1, sha256: 'a'.repeat(64), path: '/x', unchanged: false }),
    });
    const link = new Link({ name: 'fake', url, token: TOKEN, logger: testLogger(), heartbeatMs: 0 }).start();
    track(() => link.close());
    await link.ready(10_000);
    const offer = await link.request('offer', { name: 'x', size: 1, mtimeMs: 1 }, 5000).catch((e: unknown) => e);
    expect(offer).to.have.property('code', ErrorCode.PROTOCOL);
    const chunk = await link.request('chunk', { lease: 't', offset: 0, crc: 0, data: Buffer.from('x') }, 5000).catch((e: unknown) => e);
    expect(chunk).to.have.property('code', ErrorCode.PROTOCOL);
    expect((chunk as Error).message).to.contain('EMFILE');
    const commit = await commitFile(link, { lease: 't', sha256: 'a'.repeat(64) }, 5000).catch((e: unknown) => e);
    expect(commit).to.have.property('code', ErrorCode.PROTOCOL);
  });

  describe('control requests', () => {
    it('refuses a send to an empty list of receivers with USAGE', async () => {
      const r = await startReceiver();
      const src = await tmpDir('relay-src-');
      const f = await randomFile(src, 100, 'x.bin');
      const agent = await startAgent({ receivers: { a: r.url }, allowRoots: [src] });
      expect(await control(agent.socketPath, { type: 'send', paths: [f.path], to: [], transfer: {} })).to.include({ type: 'error', code: ErrorCode.USAGE });
    });

    it('answers a failure with a stable error code, never a raw system code such as ENOENT', async () => {
      const r = await startReceiver();
      const src = await tmpDir('relay-src-');
      const agent = await startAgent({ receivers: { a: r.url }, allowRoots: [src] });
      const reply = await control(agent.socketPath, { type: 'send', paths: [`${src}/missing.bin`], to: ['a'], transfer: {} });
      expect(reply.type).to.equal('error');
      expect(isErrorCode(reply.code), String(reply.code)).to.equal(true);
    });
  });
});
