import { expect } from 'chai';
import { isReceivedFrame, type ReceivedFrame } from '@relayer/common';

const frame: ReceivedFrame = { lease: 'l1', name: 'app.bin', size: 3, sha256: 'a'.repeat(64), path: '/data/app.bin', unchanged: false };

describe('the received frame: node and host path for display', () => {
  it('accepts a confirmation without them (an older receiver) and with them', () => {
    expect(isReceivedFrame(frame)).to.equal(true);
    expect(isReceivedFrame({ ...frame, node: 'pi2', displayPath: '/srv/relay-inbox/app.bin' })).to.equal(true);
  });

  it('refuses a node or display path that is not a bounded string', () => {
    for (const bad of [{ node: 7 }, { node: 'x'.repeat(257) }, { displayPath: ['/srv'] }, { displayPath: 'x'.repeat(9000) }]) {
      expect(isReceivedFrame({ ...frame, ...bad }), JSON.stringify(bad).slice(0, 40)).to.equal(false);
    }
  });
});
