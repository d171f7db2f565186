import { once } from 'node:events';
import net from 'node:net';
import { expect } from 'chai';
import { Packr } from 'msgpackr';
import { io } from 'socket.io-client';
import { WebSocket } from 'ws';
import { ErrorCode, msgpackParser, PacketType, PROTOCOL_VERSION } from '@relayer/common';
import { authDelayMs } from '@relayer/agent-receiver';
import {
  captureLogger, closeAll, randomFile, send, sha256File, startReceiver, tmpDir, TOKEN, track, waitFor, type TestReceiver,
} from '../support/util.js';

const packr = new Packr({ useRecords: false });

/** One Socket.IO login attempt from `localAddress`; resolves with the connect_error's code, or 'connected'. */
async function login(r: TestReceiver, token: string, localAddress = '127.0.0.1'): Promise<string> {
  const socket = io(r.url, {
    transports: ['websocket'], parser: msgpackParser, reconnection: false, auth: { token, protocol: PROTOCOL_VERSION }, localAddress,
  } as Parameters<typeof io>[1]);
  track(() => socket.disconnect());
  try {
    return await new Promise<string>((resolve) => {
      socket.once('connect', () => resolve('connected'));
      socket.once('connect_error', (err: Error & { data?: { code?: string } }) => resolve(err.data?.code ?? `no code: ${err.message}`));
    });
  } finally {
    socket.disconnect();
  }
}

/** Lines a captured logger wrote about one peer. */
function linesAbout(text: string, peer: string): Array<Record<string, unknown>> {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.peer === peer);
}

describe('admission: failed logins are slowed then blocked, connections are capped, half-open ones expire', () => {
  afterEach(closeAll);

  it('closes the connection after a failed login, so one connection cannot carry a second guess', async () => {
    const r = await startReceiver();
    const ws = new WebSocket(`ws://127.0.0.1:${r.address().port}/socket.io/?EIO=4&transport=websocket`);
    track(() => ws.terminate());
    const closed = once(ws, 'close');
    const replies: Array<{ type: number; data?: { data?: { code?: string } } }> = [];
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) replies.push(packr.unpack(data) as (typeof replies)[number]);
    });
    await waitFor(ws, 'message'); // the engine.io open packet
    ws.send(packr.pack({ type: PacketType.CONNECT, nsp: '/', data: { token: 'guess-1' } }));
    await waitFor(ws, 'message', (_d: unknown, isBinary: unknown) => isBinary === true);
    ws.send(packr.pack({ type: PacketType.CONNECT, nsp: '/', data: { token: 'guess-2' } }));
    await closed;
    expect(replies.map((p) => p.type)).to.deep.equal([PacketType.CONNECT_ERROR]);
    expect(replies[0]!.data?.data?.code).to.equal(ErrorCode.AUTH);
  });

  it('blocks an address after repeated failed logins, logs them as a rate, and still lets other addresses in', async () => {
    const capture = captureLogger();
    const r = await startReceiver({
      logger: capture.logger,
      admission: { authFailuresBeforeBlock: 4, authDelayBaseMs: 10, authDelayMaxMs: 40, authBlockMs: 60_000, authLogEveryMs: 60_000 },
    });
    const results: string[] = [];
    for (let i = 0; i < 10; i++) results.push(await login(r, `wrong-${i}`));
    // Four answered AUTH (each slower than the last), then the address is refused at connect.
    expect(results.slice(0, 4)).to.deep.equal(Array(4).fill(ErrorCode.AUTH));
    for (const res of results.slice(4)) expect(res).to.not.equal(ErrorCode.AUTH).and.not.equal('connected');
    // While blocked, even the right token from that address is refused; another address gets in.
    expect(await login(r, TOKEN)).to.not.equal('connected');
    expect(await login(r, TOKEN, '127.0.0.2')).to.equal('connected');
    // Ten failures and a refused connection, logged in a few lines (not one per attempt), never with a token.
    const lines = linesAbout(capture.text(), '127.0.0.1');
    expect(lines.length).to.be.at.least(2).and.at.most(3);
    expect(lines.map((l) => l.msg)).to.include('address blocked after repeated failed logins');
    expect(capture.text()).to.not.contain('wrong-').and.not.contain(TOKEN);
  });

  it('delays the answer to each further failed login from one address, up to a cap', () => {
    const o = { authDelayBaseMs: 250, authDelayMaxMs: 5000 };
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => authDelayMs(n, o))).to.deep.equal([0, 250, 500, 1000, 2000, 4000, 5000, 5000]);
  });

  it('caps connections per address and closes half-open ones; a real send from elsewhere still completes', async () => {
    const r = await startReceiver({ admission: { maxConnections: 40, maxConnectionsPerAddress: 10, handshakeTimeoutMs: 1500 } });
    const attempts = 100;
    let closedByServer = 0;
    let excessClosed!: () => void;
    let allClosed!: () => void;
    const excess = new Promise<void>((resolve) => (excessClosed = resolve));
    const all = new Promise<void>((resolve) => (allClosed = resolve));
    for (let i = 0; i < attempts; i++) {
      const s = net.connect({ host: '127.0.0.1', port: r.address().port, localAddress: '127.0.0.2' });
      track(() => s.destroy());
      // Half-open: a request line and never the end of the headers.
      s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
      s.on('error', () => undefined);
      s.on('close', () => {
        closedByServer++;
        if (closedByServer === attempts - 10) excessClosed();
        if (closedByServer === attempts) allClosed();
      });
    }
    // The excess is refused at once; the ten admitted ones are still held while the real send runs.
    await excess;
    const f = await randomFile(await tmpDir(), 3 * 1024 * 1024 + 5);
    const sent = await send([f.path], [r.url]);
    expect(sent.ok, JSON.stringify(sent.failed)).to.equal(true);
    expect(await sha256File(`${r.dir}/${sent.received[0]!.name}`)).to.equal(f.sha256);
    // And the held ones are closed by the handshake deadline, not kept until the peer gives up.
    await all;
    expect(closedByServer).to.equal(attempts);
  });

  it('caps connections over all addresses: the excess is closed at once, the admitted ones stay open', async () => {
    const r = await startReceiver({ admission: { maxConnections: 5, maxConnectionsPerAddress: 100, handshakeTimeoutMs: 60_000 } });
    const sockets: net.Socket[] = [];
    let closed = 0;
    let excessClosed!: () => void;
    const excess = new Promise<void>((resolve) => (excessClosed = resolve));
    for (let i = 0; i < 20; i++) {
      const s = net.connect({ host: '127.0.0.1', port: r.address().port, localAddress: `127.0.0.${2 + (i % 4)}` });
      track(() => s.destroy());
      s.on('error', () => undefined);
      s.on('close', () => {
        if (++closed === 15) excessClosed();
      });
      sockets.push(s);
    }
    await excess;
    expect(sockets.filter((s) => !s.destroyed)).to.have.length(5);
  });
});
