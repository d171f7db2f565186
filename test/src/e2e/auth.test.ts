import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { io } from 'socket.io-client';
import { ErrorCode, msgpackParser } from '@relayer/common';
import { LinkState } from '@relayer/agent-sender';
import {
  captureLogger, closeAll, partialEntries, publishedEntries, randomFile, send, startLink, startReceiver, tmpDir, TOKEN, track,
} from '../support/util.js';

describe('auth: only senders holding the shared token get in', () => {
  afterEach(closeAll);

  it('fails a send with a wrong token with AUTH, writes nothing and never logs the token', async () => {
    const capture = captureLogger();
    const r = await startReceiver({ logger: capture.logger });
    const wrong = `wrong-${randomBytes(12).toString('hex')}`;
    const f = await randomFile(await tmpDir(), 1000);
    const res = await send([f.path], [r.url], { token: wrong });
    expect(res.ok).to.equal(false);
    expect(res.received).to.be.empty;
    expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.AUTH]);
    expect(await publishedEntries(r.dir)).to.deep.equal([]);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
    // The refusal is logged (so the capture works) without the token, wrong or right.
    expect(capture.text()).to.contain('refused connection');
    expect(capture.text()).to.not.contain(wrong);
    expect(capture.text()).to.not.contain(TOKEN);
  });

  it('fails a send with an empty token with AUTH', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 10);
    const res = await send([f.path], [r.url], { token: '' });
    expect(res.failed.map((e) => e.code)).to.deep.equal([ErrorCode.AUTH]);
    expect(await publishedEntries(r.dir)).to.deep.equal([]);
  });

  it('refuses a handshake without any auth payload with a connect_error coded AUTH', async () => {
    const capture = captureLogger();
    const r = await startReceiver({ logger: capture.logger });
    const socket = io(r.url, { transports: ['websocket'], parser: msgpackParser, reconnection: false } as Parameters<typeof io>[1]);
    track(() => socket.disconnect());
    const err = await new Promise<Error & { data?: { code?: string } }>((resolve, reject) => {
      socket.once('connect_error', resolve);
      socket.once('connect', () => reject(new Error('connected without a token')));
    });
    expect(err.data?.code).to.equal(ErrorCode.AUTH);
    expect(socket.connected).to.equal(false);
    expect(capture.text()).to.contain('"tokenGiven":false');
  });

  it('refuses a token that differs only in case or trailing whitespace', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 10);
    for (const token of [TOKEN.toUpperCase(), `${TOKEN} `, TOKEN.slice(0, -1)]) {
      const res = await send([f.path], [r.url], { token });
      expect(res.failed.map((e) => e.code), JSON.stringify(token)).to.deep.equal([ErrorCode.AUTH]);
    }
    expect(await publishedEntries(r.dir)).to.deep.equal([]);
  });

  it('a link refused for its token ends up disconnected with lastError AUTH, and ready() rejects with AUTH', async () => {
    const r = await startReceiver();
    const link = startLink(r.url, { token: 'nope' });
    const err = await link.ready(10_000).then(() => undefined, (e: unknown) => e);
    expect(err).to.have.property('code', ErrorCode.AUTH);
    expect(link.state).to.equal(LinkState.DISCONNECTED);
    expect(link.snapshot().lastError?.code).to.equal(ErrorCode.AUTH);
  });

  it('the right token gets in, and the receiver\'s logs still never contain it', async () => {
    const capture = captureLogger();
    const r = await startReceiver({ logger: capture.logger });
    const f = await randomFile(await tmpDir(), 1000);
    const res = await send([f.path], [r.url]);
    expect(res.ok).to.equal(true);
    expect(capture.text()).to.contain('sender connected');
    expect(capture.text()).to.contain('file received');
    expect(capture.text()).to.not.contain(TOKEN);
  });
});
