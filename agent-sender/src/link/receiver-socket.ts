/**
 * The one place the sender touches socket.io-client: a connection to one receiver, with what Link needs
 * and nothing else. Socket.IO stays the transport (msgpack parser, reconnection with backoff, acks), but
 * its internals and casts live here only, each with a test (test/src/unit/socket-io-internals.test.ts)
 * that fails loudly when an upgrade of socket.io-client or engine.io-client changes what this relies on.
 */
import { NodeWebSocket } from 'engine.io-client';
import { io, type Socket } from 'socket.io-client';
import { Events, msgpackParser, type ClientToServerEvents, type HandshakeAuth, type Reply, type ServerToClientEvents } from '@relayer/common';

/**
 * engine.io-client's Node websocket transport with an all-zero masking key. RFC 6455 has clients mask
 * every frame so that a script in a browser cannot make a proxy that does not understand websockets read
 * its bytes as HTTP; a sender agent is not a browser running foreign scripts, and with an all-zero key the
 * `ws` library sends the chunk bytes as they are, instead of copying every megabyte into a fresh masked
 * buffer. Receivers see ordinary masked frames (a key of 0 is a valid key): nothing changes on the wire
 * format or on the receiving side.
 */
export class UnmaskedWebSocket extends NodeWebSocket {
  override createSocket(uri: string, protocols: string | string[] | undefined, opts: Record<string, unknown>): unknown {
    return super.createSocket(uri, protocols, { ...opts, generateMask: zeroMask });
  }
}

const zeroMask = (mask: Buffer): void => void mask.fill(0);

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface ReceiverSocketOptions {
  auth: HandshakeAuth;
  /** PEM CA certificate(s) to trust for https:// receivers, beside the system's. */
  ca?: string | Buffer;
  reconnectDelayMs: number;
  reconnectDelayMaxMs: number;
}

export interface ReceiverSocketHandlers {
  connect(): void;
  disconnect(reason: string): void;
  connectError(err: Error & { data?: { code?: string; message?: string } }): void;
  received(frames: unknown): void;
}

export class ReceiverSocket {
  private readonly socket: ClientSocket;

  constructor(url: string, options: ReceiverSocketOptions, handlers: ReceiverSocketHandlers) {
    this.socket = io(url, {
      // The transport class, not its name: the same websocket transport, with unmasked chunk bytes.
      transports: [UnmaskedWebSocket],
      parser: msgpackParser,
      auth: options.auth,
      autoConnect: false,
      reconnection: true,
      reconnectionAttempts: Infinity,
      reconnectionDelay: options.reconnectDelayMs,
      reconnectionDelayMax: options.reconnectDelayMaxMs,
      randomizationFactor: 0.3,
      timeout: 10_000,
      rejectUnauthorized: true,
      ...(options.ca ? { ca: options.ca } : {}),
    } as Parameters<typeof io>[1]);
    this.socket.on('connect', () => handlers.connect());
    this.socket.on('disconnect', (reason) => handlers.disconnect(reason));
    this.socket.on('connect_error', (err) => handlers.connectError(err as Error & { data?: { code?: string } }));
    this.socket.on(Events.RECEIVED, (frames) => handlers.received(frames));
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  connect(): void {
    this.socket.connect();
  }

  /** For good: no reconnection until connect(). */
  disconnect(): void {
    this.socket.disconnect();
  }

  /** Emits `event` and resolves with its ack; rejects when none comes within timeoutMs. */
  ask(event: string, frame: unknown, timeoutMs: number): Promise<Reply<object>> {
    // The typed event maps name each request's own ack; this generic path takes any of them.
    return (this.socket.timeout(timeoutMs) as unknown as Socket).emitWithAck(event, frame);
  }

  /** Best effort, no ack. */
  notify(event: typeof Events.ABORT, frame: { lease: string }): void {
    this.socket.emit(event, frame);
  }

  /** Drops the transport only: the manager reconnects with its backoff (a handshake that got no answer). */
  dropTransport(): void {
    this.socket.io.engine?.close();
  }

  /**
   * Forgets packets queued while disconnected: Socket.IO would send them on the next connection, and a
   * chunk or commit of an attempt that already failed must never reach the receiver later.
   */
  forgetQueued(): void {
    this.socket.sendBuffer.length = 0;
  }
}
