/**
 * The one TCP proxy on 127.0.0.1 for fault injection (e2e tests, the fault suite, the bench): forwards to
 * a target and can cut connections (after N bytes of each, or when the client→server total passes each
 * of a list of positions), flip one byte on the wire, freeze both directions (a hung link), and throttle
 * the client→server direction to a byte rate (a slow link).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';

export interface ProxyOptions {
  /** Cut the first `cuts` connections after this many client→server bytes of each. */
  cutAfterBytes?: number;
  cuts?: number;
  /**
   * Flip one byte (XOR 0xff) of the client→server stream at this absolute offset, on the first
   * connection only (a corrupted byte on the wire). Emits 'corrupt' with the offset once done.
   */
  corruptAtByte?: number;
  /** Where the target listens. Default 127.0.0.1. */
  targetHost?: string;
}

export class FaultProxy extends EventEmitter {
  private readonly server: net.Server;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  /** Client→server bytes forwarded, over all connections. */
  forwarded = 0;
  connections = 0;
  cutsDone = 0;
  /** Bytes flipped so far (at most one, see corruptAtByte). */
  corruptionsDone = 0;
  stalls = 0;
  throttles = 0;
  private cutAt: number[] = [];
  private frozen = false;
  private rate = 0;
  private budget = 0;
  private refill: NodeJS.Timeout | undefined;

  constructor(private readonly targetPort: number, private readonly opts: ProxyOptions = {}) {
    super();
    this.server = net.createServer((client) => this.onClient(client));
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this.port;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Cut whatever connection is open when the forwarded total passes each of these positions. */
  cutAtPositions(positions: number[]): void {
    this.cutAt = [...positions].sort((a, b) => a - b);
  }

  get cutsPending(): number {
    return this.cutAt.length;
  }

  private get throttled(): boolean {
    return this.rate > 0 && this.budget < 0;
  }

  private onClient(client: net.Socket): void {
    this.connections++;
    const upstream = net.connect(this.targetPort, this.opts.targetHost ?? '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.pairs.add(pair);
    if (this.frozen) {
      client.pause();
      upstream.pause();
    }
    const cutThis = this.opts.cutAfterBytes !== undefined && this.cutsDone < (this.opts.cuts ?? 1);
    const corruptAt = this.connections === 1 ? this.opts.corruptAtByte : undefined;
    let seen = 0;
    /** Forwards `keep` bytes of data, then ends both sides. */
    const cut = (data: Buffer, keep: number): void => {
      if (keep > 0) upstream.write(data.subarray(0, keep));
      this.forwarded += Math.max(keep, 0);
      this.cutsDone++;
      client.destroy();
      upstream.destroy();
      this.emit('cut', this.cutsDone);
    };
    client.on('data', (data: Buffer) => {
      if (corruptAt !== undefined && corruptAt >= seen && corruptAt < seen + data.length) {
        data[corruptAt - seen] ^= 0xff;
        this.corruptionsDone++;
        this.emit('corrupt', corruptAt);
      }
      if (cutThis && seen + data.length >= this.opts.cutAfterBytes!) {
        const keep = this.opts.cutAfterBytes! - seen;
        seen += data.length;
        return cut(data, keep);
      }
      const next = this.cutAt[0];
      if (next !== undefined && this.forwarded + data.length >= next) {
        this.cutAt.shift();
        return cut(data, next - this.forwarded);
      }
      seen += data.length;
      this.forwarded += data.length;
      const more = upstream.write(data);
      if (this.rate > 0) {
        this.budget -= data.length;
        if (this.budget < 0) client.pause();
      } else if (!more) client.pause();
    });
    upstream.on('drain', () => this.frozen || this.throttled || client.resume());
    upstream.on('data', (data: Buffer) => {
      if (!client.write(data)) upstream.pause();
    });
    client.on('drain', () => this.frozen || upstream.resume());
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }

  /** Stops forwarding in both directions while keeping the connections open (a hung peer or link). */
  freeze(): void {
    this.frozen = true;
    for (const [c, u] of this.pairs) {
      c.pause();
      u.pause();
    }
  }

  thaw(): void {
    this.frozen = false;
    for (const [c, u] of this.pairs) {
      if (!this.throttled) c.resume();
      u.resume();
    }
  }

  /** freeze() for ms, then thaw(). */
  async stall(ms: number): Promise<void> {
    this.stalls++;
    this.freeze();
    await new Promise((r) => setTimeout(r, ms));
    this.thaw();
  }

  /** Limits client→server to bytesPerSec for ms (budget refilled every 50 ms). */
  async throttle(bytesPerSec: number, ms: number): Promise<void> {
    this.throttles++;
    this.rate = bytesPerSec;
    this.budget = bytesPerSec / 20;
    this.refill = setInterval(() => {
      this.budget = Math.min(this.budget + this.rate / 20, this.rate / 20);
      if (this.budget >= 0 && !this.frozen) for (const [c] of this.pairs) c.resume();
    }, 50);
    await new Promise((r) => setTimeout(r, ms));
    clearInterval(this.refill);
    this.rate = 0;
    if (!this.frozen) for (const [c] of this.pairs) c.resume();
  }

  async close(): Promise<void> {
    clearInterval(this.refill);
    for (const [c, u] of this.pairs) {
      c.destroy();
      u.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
