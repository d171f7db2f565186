import { expect } from 'chai';
import { isControlRequest, splitReplies } from '@relayer/agent-sender';

describe('control protocol: what the agent and `relay` accept from each other', () => {
  it('a request is a status, or a send with its paths, targets and options; anything else is refused', () => {
    const send = { type: 'send', paths: ['/a'], to: ['r'], transfer: {} };
    expect(isControlRequest(send)).to.equal(true);
    expect(isControlRequest({ type: 'status' })).to.equal(true);
    for (const bad of [null, 'send', { type: 'fetch' }, { ...send, paths: '/a' }, { ...send, to: [1] }, { ...send, as: 5 }]) {
      expect(isControlRequest(bad), JSON.stringify(bad)).to.equal(false);
    }
  });

  it('splits a message into its replies, in order; a single reply is a message of one line', () => {
    expect(splitReplies('{"type":"start","name":"a\\nb"}\n{"type":"done","ok":true}').map((m) => m.type)).to.deep.equal(['start', 'done']);
    expect(splitReplies('{"type":"status","receivers":[],"transfers":[]}')).to.have.length(1);
  });

  it('refuses a line that is not a control message (relay then fails with PROTOCOL, never crashes)', () => {
    for (const bad of ['null', '3', '"done"', '[]', '{"ok":true}', '{"type":1}', '{"type":"done"}\n', 'not json']) {
      expect(() => splitReplies(bad), bad).to.throw();
    }
  });
});
