/**
 * The chunk window against a fake receiver channel that behaves like the real one (takes chunks only at
 * its contiguous offset) and injects one fault at chunk N, deterministically: a gap, a CHECKSUM refusal
 * or a timeout.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ChunkBuffers, ChunkWindow, RetryPolicy, type ChunkChannel } from '@relayer/agent-sender';
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

describe('ChunkWindow with reused buffers: a buffer is reused only once its chunk was acknowledged', () => {
  const source = randomBytes(20 * chunkSize + 123);

  /** Runs a window whose reads come from a ChunkBuffers pool; `inflight` is the memory of chunks not yet answered. */
  function pooled(receiver: FakeReceiver, check: (frame: ChunkFrame) => void): Promise<void> {
    const buffers = new ChunkBuffers(chunkSize, windowSize + 1);
    const channel: ChunkChannel = { send: (frame) => (check(frame), receiver.send(frame)) };
    return new ChunkWindow({
      lease: 'l', size: source.length, start: 0, chunkSize, window: windowSize, channel,
      read: async (position, length) => {
        const buf = buffers.take(length);
        source.copy(buf, 0, position, position + length);
        return buf;
      },
      release: (data) => buffers.give(data),
      onAcked: () => undefined, log: testLogger('window'),
    }).run();
  }

  for (const kind of ['gap', 'checksum'] as Fault[]) {
    it(`through a ${kind} at chunk 3, bytes arrive intact and no chunk is sent in memory another unanswered chunk uses`, async () => {
      const receiver = new FakeReceiver(source.length, chunkSize, new Map([[3, { kind, times: 1 }]]));
      const inflight = new Set<ArrayBufferLike>();
      const memories = new Set<ArrayBufferLike>();
      const originalSend = receiver.send.bind(receiver);
      receiver.send = async (frame) => {
        try {
          return await originalSend(frame);
        } finally {
          inflight.delete(frame.data.buffer);
        }
      };
      await pooled(receiver, (frame) => {
        expect(inflight.has(frame.data.buffer), `chunk at ${frame.offset} reuses memory still in flight`).to.equal(false);
        inflight.add(frame.data.buffer);
        memories.add(frame.data.buffer);
      });
      expect(receiver.data.equals(source)).to.equal(true);
      // Reused, not one buffer per chunk: at most the window plus the one being read.
      expect(memories.size).to.be.at.most(windowSize + 1);
    });
  }

  it('never reuses the buffer of a chunk whose request failed (its message may still be queued)', async () => {
    // A CHECKSUM refusal fails the chunk's request but not the window: later chunks must not get its memory.
    const receiver = new FakeReceiver(source.length, chunkSize, new Map([[5, { kind: 'checksum' as Fault, times: 1 }]]));
    let failed: ArrayBufferLike | undefined;
    const sentAfter: ArrayBufferLike[] = [];
    const originalSend = receiver.send.bind(receiver);
    receiver.send = async (frame) => {
      if (failed) sentAfter.push(frame.data.buffer);
      try {
        return await originalSend(frame);
      } catch (err) {
        failed = frame.data.buffer;
        throw err;
      }
    };
    await pooled(receiver, () => undefined);
    expect(receiver.data.equals(source)).to.equal(true);
    expect(failed).to.not.equal(undefined);
    expect(sentAfter.length).to.be.above(5);
    expect(sentAfter).to.not.include(failed);
  });
});

describe('ChunkBuffers: a bounded pool of framable chunk buffers', () => {
  it('hands out a given-back buffer again, never one still taken, and keeps at most `keep`', () => {
    const pool = new ChunkBuffers(64, 2);
    const a = pool.take(64);
    const b = pool.take(10);
    expect(b.length).to.equal(10);
    expect(a.buffer).to.not.equal(b.buffer);
    pool.give(b);
    const c = pool.take(64);
    expect(c.buffer).to.equal(b.buffer);
    expect(c.length).to.equal(64);
    expect(c.byteOffset).to.equal(b.byteOffset);
    const d = pool.take(64);
    expect([a.buffer, c.buffer]).to.not.include(d.buffer);
    const e = pool.take(64);
    for (const x of [a, c, d, e]) pool.give(x);
    const again = [pool.take(1), pool.take(1), pool.take(1)];
    // Two were kept; the third is new memory.
    expect(again.filter((x) => [a, c, d, e].some((y) => y.buffer === x.buffer))).to.have.length(2);
  });

  it('ignores buffers it did not make and a buffer given back twice', () => {
    const pool = new ChunkBuffers(64, 4);
    pool.give(Buffer.alloc(64));
    const a = pool.take(64);
    pool.give(a);
    pool.give(a);
    const [x, y] = [pool.take(64), pool.take(64)];
    expect(x.buffer).to.equal(a.buffer);
    expect(y.buffer).to.not.equal(a.buffer);
  });

  it('refuses a chunk larger than its buffers', () => {
    expect(() => new ChunkBuffers(64, 1).take(65)).to.throw(RangeError);
  });
});

describe('RetryPolicy: the one retry decision, run by p-retry', () => {
  const quick = { minDelayMs: 1, maxDelayMs: 2 };
  /** An operation that fails with the given errors in turn, then succeeds; `onCall` runs before each. */
  function failing(errors: unknown[], onCall: (n: number) => void = () => undefined): { calls: () => number; op: () => Promise<string> } {
    let n = 0;
    return {
      calls: () => n,
      op: async () => {
        onCall(++n);
        if (n <= errors.length) throw errors[n - 1];
        return 'done';
      },
    };
  }

  it('retries retryable codes until the attempt succeeds', async () => {
    const policy = new RetryPolicy({ timeoutMs: 60_000, ...quick });
    const f = failing([createError(ErrorCode.DISCONNECTED, 'x'), createError(ErrorCode.TIMEOUT, 'y'), createError(ErrorCode.UNKNOWN_TRANSFER, 'z')]);
    expect(await policy.run(f.op, undefined)).to.equal('done');
    expect(f.calls()).to.equal(4);
  });

  it('never retries a final code or a non-RelayError: the error comes back as it was', async () => {
    for (const err of [ErrorCode.SUPERSEDED, ErrorCode.CHECKSUM, ErrorCode.BAD_NAME, ErrorCode.SOURCE_CHANGED, ErrorCode.PROTOCOL]
      .map((code) => new RelayError(code, 'x')).concat([new Error('boom') as RelayError])) {
      const f = failing([err]);
      const got = await new RetryPolicy({ timeoutMs: 60_000, ...quick }).run(f.op, undefined).catch((e: unknown) => e);
      expect(got, String(err)).to.equal(err);
      expect(f.calls()).to.equal(1);
    }
  });

  it('does not retry past the timeout without progress, nor a cancelled run', async () => {
    const f = failing([createError(ErrorCode.DISCONNECTED, 'x')]);
    await expectRejectsCode(new RetryPolicy({ timeoutMs: 0, ...quick }).run(f.op, undefined), ErrorCode.DISCONNECTED);
    expect(f.calls()).to.equal(1);
    const controller = new AbortController();
    const g = failing([createError(ErrorCode.DISCONNECTED, 'x'), createError(ErrorCode.DISCONNECTED, 'x')], (n) => { if (n === 1) controller.abort(); });
    const got = await new RetryPolicy({ timeoutMs: 60_000, ...quick }).run(g.op, controller.signal).catch((e: unknown) => e);
    expect(got).to.be.an('error');
    expect(g.calls()).to.equal(1);
  });

  it('stops after the maximum attempts without progress, but attempts that made progress do not count', async () => {
    const errors = Array.from({ length: 6 }, () => createError(ErrorCode.TIMEOUT, 'x'));
    const stalled = failing(errors);
    await expectRejectsCode(new RetryPolicy({ timeoutMs: 60_000, maxAttemptsWithoutProgress: 3, ...quick }).run(stalled.op, undefined), ErrorCode.TIMEOUT);
    expect(stalled.calls()).to.equal(4);
    const policy = new RetryPolicy({ timeoutMs: 60_000, maxAttemptsWithoutProgress: 3, ...quick });
    const progressing = failing(errors, () => policy.progressed());
    expect(await policy.run(progressing.op, undefined)).to.equal('done');
    expect(progressing.calls()).to.equal(7);
  });
});
