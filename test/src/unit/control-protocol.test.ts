import { expect } from 'chai';
import { isControlRequest, splitReplies } from '@relayer/agent-sender';

describe('control protocol: what the agent and `relay` accept from each other', () => {
  it('a request may ask for batched replies with a boolean, nothing else', () => {
    const send = { type: 'send', paths: ['/a'], to: ['r'], transfer: {} };
    expect(isControlRequest(send)).to.equal(true);
    expect(isControlRequest({ ...send, batched: true })).to.equal(true);
    expect(isControlRequest({ type: 'status', batched: false })).to.equal(true);
    for (const batched of ['yes', 1, null, {}]) expect(isControlRequest({ ...send, batched }), String(batched)).to.equal(false);
  });

  it('splits a batched message into its replies, in order; a single reply is a message of one line', () => {
    expect(splitReplies('{"type":"start","name":"a\\nb"}\n{"type":"done","ok":true}').map((m) => m.type)).to.deep.equal(['start', 'done']);
    expect(splitReplies('{"type":"status","receivers":[],"transfers":[]}')).to.have.length(1);
  });

  it('refuses a line that is not a control message (relay then fails with PROTOCOL, never crashes)', () => {
    for (const bad of ['null', '3', '"done"', '[]', '{"ok":true}', '{"type":1}', '{"type":"done"}\n', 'not json']) {
      expect(() => splitReplies(bad), bad).to.throw();
    }
  });
});
