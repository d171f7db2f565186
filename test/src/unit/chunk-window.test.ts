/**
 * The chunk window against a fake receiver channel that behaves like the real one (takes chunks only at
 * its contiguous offset) and injects one fault at chunk N, deterministically: a gap, a CHECKSUM refusal
 * or a timeout.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ChunkWindow, RetryPolicy, type ChunkChannel } from '@relayer/agent-sender';
import { createError, ErrorCode, RelayError, type ChunkAck, type ChunkFrame } from '@relayer/common';
import { expectRejectsCode, testLogger } from '../support/util.js';

type Fault = 'gap' | 'checksum' | 'timeout';

/** A receiver in memory. `faults` maps a chunk index to what happens the first `times` it is sent. */
class FakeReceiver implements ChunkChannel {
  readonly data: Buffer;
  written = 0;
  sends = 0;
  private readonly seen = new Map<number, number>();

  constructor(size: number, private readonly chunkSize: number, private readonly faults: Map<number, { kind: Fault; times: number }>) {
    this.data = Buffer.alloc(size);
  }

  async send(frame: ChunkFrame): Promise<ChunkAck> {
    this.sends++;
    await new Promise((resolve) => setImmediate(resolve));
    const index = frame.offset / this.chunkSize;
    const count = (this.seen.get(index) ?? 0) + 1;
    this.seen.set(index, count);
    const fault = this.faults.get(index);
    if (fault && count <= fault.times) {
      if (fault.kind === 'checksum') throw createError(ErrorCode.CHECKSUM, `chunk ${index} corrupt`);
      if (fault.kind === 'timeout') throw createError(ErrorCode.TIMEOUT, `no answer to chunk ${index}`);
      return { offset: this.written, taken: false };
    }
    if (frame.offset !== this.written) return { offset: this.written, taken: false };
    Buffer.from(frame.data).copy(this.data, frame.offset);
    this.written += frame.data.length;
    return { offset: this.written, taken: true };
  }
}

const chunkSize = 1000;
const windowSize = 4;

function run(source: Buffer, receiver: FakeReceiver, start = 0): { window: ChunkWindow; acked: number[]; done: Promise<void> } {
  const acked: number[] = [];
  const window = new ChunkWindow({
    lease: 'l', size: source.length, start, chunkSize, window: windowSize, channel: receiver,
    read: async (position, length) => Buffer.from(source.subarray(position, position + length)),
    onAcked: (offset) => acked.push(offset), log: testLogger('window'),
  });
  return { window, acked, done: window.run() };
}

describe('ChunkWindow: chunks in flight, explicit rewinds, through a fake channel', () => {
  const source = randomBytes(20 * chunkSize + 123);

  it('delivers every byte once when nothing goes wrong; acks only grow', async () => {
    const receiver = new FakeReceiver(source.length, chunkSize, new Map());
    const { window, acked, done } = run(source, receiver);
    await done;
    expect(receiver.data.equals(source)).to.equal(true);
    expect(window.bytesSent).to.equal(source.length);
    expect(acked.at(-1)).to.equal(source.length);
    expect([...acked].sort((a, b) => a - b)).to.deep.equal(acked);
  });

  for (const at of [0, 3, 20]) {
    it(`a CHECKSUM refusal of chunk ${at} rewinds to it: the bytes arrive intact, at most one window re-sent`, async () => {
      const receiver = new FakeReceiver(source.length, chunkSize, new Map([[at, { kind: 'checksum' as Fault, times: 1 }]]));
      const { window, done } = run(source, receiver);
      await done;
      expect(receiver.data.equals(source)).to.equal(true);
      expect(window.bytesSent).to.be.above(source.length);
      expect(window.bytesSent - source.length).to.be.at.most(windowSize * chunkSize);
    });

    it(`a gap at chunk ${at} (not taken) rewinds to the receiver's offset and completes`, async () => {
      const receiver = new FakeReceiver(source.length, chunkSize, new Map([[at, { kind: 'gap' as Fault, times: 1 }]]));
      const { window, done } = run(source, receiver);
      await done;
      expect(receiver.data.equals(source)).to.equal(true);
      expect(window.bytesSent - source.length).to.be.at.most(windowSize * chunkSize);
    });
  }

  it('a timeout at chunk 5 fails the window with TIMEOUT, with no ack past what the receiver holds', async () => {
    const receiver = new FakeReceiver(source.length, chunkSize, new Map([[5, { kind: 'timeout' as Fault, times: 1 }]]));
    const { window, done } = run(source, receiver);
    await expectRejectsCode(done, ErrorCode.TIMEOUT);
    expect(window.acked).to.be.at.most(receiver.written);
    expect(receiver.written).to.equal(5 * chunkSize);
  });

  it('gives up with CHECKSUM when the same chunk is refused as corrupt more than 8 times in a row', async () => {
    const receiver = new FakeReceiver(source.length, chunkSize, new Map([[2, { kind: 'checksum' as Fault, times: 100 }]]));
    const { done } = run(source, receiver);
    await expectRejectsCode(done, ErrorCode.CHECKSUM);
    expect(receiver.written).to.equal(2 * chunkSize);
  });

  it('resumes from a start offset: only the rest is sent', async () => {
    const receiver = new FakeReceiver(source.length, chunkSize, new Map());
    source.copy(receiver.data, 0, 0, 7 * chunkSize);
    receiver.written = 7 * chunkSize;
    const { window, done } = run(source, receiver, 7 * chunkSize);
    await done;
    expect(receiver.data.equals(source)).to.equal(true);
    expect(window.bytesSent).to.equal(source.length - 7 * chunkSize);
  });
});

describe('RetryPolicy: the one retry decision', () => {
  it('retries retryable codes with a growing delay, and starts over after progress', () => {
    const policy = new RetryPolicy({ timeoutMs: 60_000, minDelayMs: 100, maxDelayMs: 1000 }, () => 1);
    const delays = [1, 2, 3, 4, 5].map(() => policy.decide(createError(ErrorCode.DISCONNECTED, 'x')));
    expect(delays.map((d) => (d.retry ? d.delayMs : -1))).to.deep.equal([100, 200, 400, 800, 1000]);
    policy.progressed();
    expect(policy.decide(createError(ErrorCode.UNKNOWN_TRANSFER, 'x'))).to.deep.equal({ retry: true, delayMs: 100 });
  });

  it('never retries a final code, a non-RelayError, a cancelled run, or past the timeout', () => {
    const policy = new RetryPolicy({ timeoutMs: 60_000 });
    for (const code of [ErrorCode.SUPERSEDED, ErrorCode.CHECKSUM, ErrorCode.BAD_NAME, ErrorCode.SOURCE_CHANGED, ErrorCode.PROTOCOL]) {
      expect(policy.decide(new RelayError(code, 'x')).retry, code).to.equal(false);
    }
    expect(policy.decide(new Error('boom')).retry).to.equal(false);
    const aborted = AbortSignal.abort();
    expect(policy.decide(createError(ErrorCode.DISCONNECTED, 'x'), aborted).retry).to.equal(false);
    expect(new RetryPolicy({ timeoutMs: 0 }).decide(createError(ErrorCode.DISCONNECTED, 'x')).retry).to.equal(false);
  });

  it('stops after the maximum attempts without progress', () => {
    const policy = new RetryPolicy({ timeoutMs: 60_000, maxAttemptsWithoutProgress: 3 });
    const retried = [1, 2, 3, 4].map(() => policy.decide(createError(ErrorCode.TIMEOUT, 'x')).retry);
    expect(retried).to.deep.equal([true, true, true, false]);
  });
});
