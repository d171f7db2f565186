/**
 * A TCP proxy on 127.0.0.1 for fault injection: forwards to a target port and can cut a connection
 * after N bytes from the client (a dropped link mid-transfer).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';

export interface ProxyOptions {
  /** Cut the first `cuts` connections after this many client→server bytes. */
  cutAfterBytes?: number;
  cuts?: number;
  /**
   * Flip one byte (XOR 0xff) of the client→server stream at this absolute offset, on the first
   * connection only (a corrupted byte on the wire). Emits 'corrupt' with the offset once done.
   */
  corruptAtByte?: number;
}

export class FaultProxy extends EventEmitter {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** Client→server bytes forwarded, over all connections. */
  forwarded = 0;
  connections = 0;
  cutsDone = 0;
  /** Bytes flipped so far (at most one, see corruptAtByte). */
  corruptionsDone = 0;
  private frozen = false;

  constructor(private readonly targetPort: number, private readonly opts: ProxyOptions = {}) {
    super();
    this.server = net.createServer((client) => this.onClient(client));
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  private onClient(client: net.Socket): void {
    this.connections++;
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const cutThis = this.opts.cutAfterBytes !== undefined && this.cutsDone < (this.opts.cuts ?? 1);
    const corruptAt = this.connections === 1 ? this.opts.corruptAtByte : undefined;
    let seen = 0;
    client.on('data', (data: Buffer) => {
      if (corruptAt !== undefined && corruptAt >= seen && corruptAt < seen + data.length) {
        data[corruptAt - seen] ^= 0xff;
        this.corruptionsDone++;
        this.emit('corrupt', corruptAt);
      }
      if (cutThis && seen + data.length >= this.opts.cutAfterBytes!) {
        const keep = this.opts.cutAfterBytes! - seen;
        if (keep > 0) upstream.write(data.subarray(0, keep));
        this.forwarded += Math.max(keep, 0);
        seen += data.length;
        this.cutsDone++;
        client.destroy();
        upstream.destroy();
        this.emit('cut', this.cutsDone);
        return;
      }
      seen += data.length;
      this.forwarded += data.length;
      if (!upstream.write(data)) client.pause();
    });
    upstream.on('drain', () => this.frozen || client.resume());
    upstream.on('data', (data: Buffer) => {
      if (!client.write(data)) upstream.pause();
    });
    client.on('drain', () => this.frozen || upstream.resume());
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }

  /** Stops forwarding in both directions while keeping the connections open (a hung peer or link). */
  freeze(): void {
    this.frozen = true;
    for (const s of this.sockets) s.pause();
  }

  thaw(): void {
    this.frozen = false;
    for (const s of this.sockets) s.resume();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
