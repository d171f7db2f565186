/**
 * A TCP proxy on 127.0.0.1 for the fault suite (an extension of test/src/support/proxy.ts): it cuts every
 * connection when the client→server stream passes the next of a list of absolute byte positions (random
 * cuts spread over one long transfer), freezes both directions for a while (a stall), and throttles the
 * client→server direction to a byte rate for a while (a slow link).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';

export class ChaosProxy extends EventEmitter {
  private readonly server: net.Server;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  /** Client→server bytes forwarded over all connections. */
  forwarded = 0;
  connections = 0;
  cutsDone = 0;
  stalls = 0;
  throttles = 0;
  private cutAt: number[] = [];
  private frozen = false;
  private rate = 0;
  private budget = 0;
  private refill: NodeJS.Timeout | undefined;

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {
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

  private onClient(client: net.Socket): void {
    this.connections++;
    const upstream = net.connect(this.targetPort, this.targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.pairs.add(pair);
    if (this.frozen) {
      client.pause();
      upstream.pause();
    }
    client.on('data', (data: Buffer) => {
      const next = this.cutAt[0];
      if (next !== undefined && this.forwarded + data.length >= next) {
        const keep = Math.max(0, next - this.forwarded);
        if (keep > 0) upstream.write(data.subarray(0, keep));
        this.forwarded += keep;
        this.cutAt.shift();
        this.cutsDone++;
        client.destroy();
        upstream.destroy();
        this.emit('cut', this.cutsDone);
        return;
      }
      this.forwarded += data.length;
      const more = upstream.write(data);
      if (this.rate > 0) {
        this.budget -= data.length;
        if (this.budget < 0) client.pause();
      } else if (!more) client.pause();
    });
    upstream.on('drain', () => this.frozen || (this.rate > 0 && this.budget < 0) || client.resume());
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

  /** Stops forwarding both ways for ms while keeping the connections open (a hung link). */
  async stall(ms: number): Promise<void> {
    this.stalls++;
    this.frozen = true;
    for (const [c, u] of this.pairs) {
      c.pause();
      u.pause();
    }
    await new Promise((r) => setTimeout(r, ms));
    this.frozen = false;
    for (const [c, u] of this.pairs) {
      if (!(this.rate > 0 && this.budget < 0)) c.resume();
      u.resume();
    }
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
