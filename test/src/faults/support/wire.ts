/**
 * A raw peer for the hostile-frames scenario: a bare websocket speaking engine.io v4 and Socket.IO packets
 * encoded as one msgpack message each (the project's parser), so it can send anything at all.
 *
 * Everything that depends on the relay protocol's frames (event names, field names, the id an offer
 * returns) is in WIRE below: one place to edit when the protocol changes.
 */
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '@relayer/common';

export const WIRE = {
  /** The handshake names the receiver's protocol version, else the receiver refuses (PROTOCOL); taken from common so a bump cannot silently turn every hostile connection into a refused one. */
  protocol: PROTOCOL_VERSION,
  events: { offer: 'offer', chunk: 'chunk', identical: 'identical', commit: 'commit', put: 'put', abort: 'abort', heartbeat: 'heartbeat' },
  /** The per-attempt id an accepted offer returns and the other requests carry (`transfer` in protocol v1). */
  idField: 'lease',
  auth: (token: unknown): Record<string, unknown> => ({ token, protocol: WIRE.protocol }),
  offer: (name: string, size: number): Record<string, unknown> => ({ name, size, mtimeMs: Date.now() }),
  idOf: (reply: Record<string, unknown>): string | undefined => {
    const v = reply[WIRE.idField];
    return typeof v === 'string' ? v : undefined;
  },
  chunk: (id: string, offset: number, data: Uint8Array): Record<string, unknown> => ({ [WIRE.idField]: id, offset, crc: crc32(data), data }),
  identical: (id: string, sha256: string): Record<string, unknown> => ({ [WIRE.idField]: id, sha256 }),
  commit: (id: string, sha256: string): Record<string, unknown> => ({ [WIRE.idField]: id, sha256 }),
  abort: (id: string): Record<string, unknown> => ({ [WIRE.idField]: id }),
  /** Small files whole (protocol v4): the frame's id, and each file with its name, sha256 and bytes. */
  put: (files: Array<{ name: unknown; sha256: unknown; data: unknown }>): Record<string, unknown> => ({ id: `p${Date.now()}`, files }),
  heartbeat: (seq: number): Record<string, unknown> => ({ seq, sentAt: Date.now(), intervalMs: 1000 }),
};

/** Socket.IO packet types. */
export const PT = { CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4 } as const;

export const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export interface Packet {
  type: number;
  nsp: string;
  data?: unknown;
  id?: number;
}

/** One raw connection. Counts what came back; answers engine.io pings so idle time is not a reason to close. */
export class RawPeer {
  readonly closed: Promise<void>;
  isClosed = false;
  replies = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, (data: unknown[]) => void>();
  private connectWaiter: ((p: Packet) => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.once('close', () => {
      this.isClosed = true;
      resolve();
    }));
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        if (data.toString() === '2') ws.send('3');
        return;
      }
      let p: Packet;
      try {
        p = packr.unpack(data) as Packet;
      } catch {
        return;
      }
      if (p.type === PT.ACK && typeof p.id === 'number') {
        this.replies++;
        this.waiting.get(p.id)?.(p.data as unknown[]);
        this.waiting.delete(p.id);
      } else if (p.type === PT.CONNECT || p.type === PT.CONNECT_ERROR) {
        this.connectWaiter?.(p);
      }
    });
  }

  /**
   * Opens the websocket (from `localAddress`, e.g. another 127.x address) and waits for engine.io's open
   * packet; rejects on failure or after timeoutMs.
   */
  static async open(host: string, port: number, opts: { localAddress?: string; timeoutMs?: number } = {}): Promise<RawPeer> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const ws = new WebSocket(`ws://${host}:${port}/socket.io/?EIO=4&transport=websocket`, { maxPayload: 64 * 1024 * 1024, localAddress: opts.localAddress });
    const peer = new RawPeer(ws);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('no engine.io open packet'));
      }, timeoutMs);
      ws.once('message', (d: Buffer, isBinary: boolean) => {
        clearTimeout(timer);
        if (!isBinary && d.toString().startsWith('0')) resolve();
        else reject(new Error(`unexpected first message ${d.toString().slice(0, 40)}`));
      });
      ws.once('close', () => {
        clearTimeout(timer);
        reject(new Error('closed before the open packet'));
      });
    });
    return peer;
  }

  /** Socket.IO CONNECT to "/" with this auth; resolves true when accepted. */
  async connect(auth: unknown, timeoutMs = 10_000): Promise<boolean> {
    const reply = new Promise<Packet | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      this.connectWaiter = (p) => {
        clearTimeout(timer);
        resolve(p);
      };
      void this.closed.then(() => resolve(undefined));
    });
    this.packet({ type: PT.CONNECT, nsp: '/', ...(auth === undefined ? {} : { data: auth }) });
    const p = await reply;
    return p?.type === PT.CONNECT;
  }

  send(data: Buffer | string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  packet(p: Packet): void {
    this.send(packr.pack(p));
  }

  /** An EVENT with an ack id; resolves with the ack's arguments, or undefined on close / timeout. */
  request(event: string, frame: unknown, timeoutMs = 10_000): Promise<unknown[] | undefined> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(id, (data) => {
        clearTimeout(timer);
        resolve(data);
      });
      void this.closed.then(() => {
        clearTimeout(timer);
        resolve(undefined);
      });
      this.packet({ type: PT.EVENT, nsp: '/', data: [event, frame], id });
    });
  }

  /** An id for a request whose reply the caller does not wait for. */
  takeId(): number {
    return this.nextId++;
  }

  close(): void {
    this.ws.terminate();
  }
}
