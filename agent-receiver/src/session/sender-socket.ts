/**
 * The one place the receiver touches socket.io: the server's options, and one sender's connection with
 * what a Session and the admission need and nothing else. Socket.IO stays the transport (the card asks for
 * it), but its internals and casts live here only, each checked on a real connection by
 * test/src/unit/socket-io-internals.test.ts, which fails loudly when an upgrade of socket.io or engine.io
 * changes what this relies on.
 */
import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import {
  createParser, Events, FRAME_OVERHEAD, MAX_CHUNK_SIZE,
  type ClientToServerEvents, type ReceivedFrame, type ServerToClientEvents,
} from '@relayer/common';

type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents>;
export type SocketServer = Server<ClientToServerEvents, ServerToClientEvents>;

export interface SocketServerOptions {
  pingIntervalMs: number;
  pingTimeoutMs: number;
  /** A packet that does not decode closes its connection; this says why. */
  onMalformed: (reason: string) => void;
}

/** Socket.IO on `http`: websocket only, no compression, msgpack frames up to one chunk and its envelope. */
export function createSocketServer(http: HttpServer, options: SocketServerOptions): SocketServer {
  return new Server<ClientToServerEvents, ServerToClientEvents>(http, {
    transports: ['websocket'],
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    parser: createParser(options.onMalformed),
    maxHttpBufferSize: MAX_CHUNK_SIZE + FRAME_OVERHEAD,
    pingInterval: options.pingIntervalMs,
    pingTimeout: options.pingTimeoutMs,
  });
}

/** Closes the connection under a socket refused at login, once the refusal is written (next tick). */
export function closeAfterRefusal(socket: Socket): void {
  setImmediate(() => socket.conn.close());
}

/** The websocket under a Socket.IO connection (websocket transport only), for flow control. */
interface Pausable {
  pause?: () => void;
  resume?: () => void;
}

export class SenderSocket {
  constructor(private readonly socket: IoSocket) {}

  get id(): string {
    return this.socket.id;
  }

  /** What the sender said in its handshake (untrusted), and the peer's address. */
  get handshake(): { auth: Record<string, unknown>; address: string } {
    return { auth: this.socket.handshake.auth as Record<string, unknown>, address: `${this.socket.handshake.address}` };
  }

  /**
   * Every `event` from the peer, its frame and ack as sent: untyped on purpose, since the peer is
   * untrusted and their types are checked, not assumed.
   */
  onRequest(event: string, handler: (frame: unknown, ack: unknown) => void): void {
    (this.socket as unknown as Socket).on(event, handler);
  }

  onAbort(handler: (frame: unknown) => void): void {
    this.socket.on(Events.ABORT, handler);
  }

  onError(handler: (err: Error) => void): void {
    this.socket.on('error', handler);
  }

  onDisconnect(handler: (reason: string) => void): void {
    this.socket.on('disconnect', handler);
  }

  /** The confirmation event: these files are verified, durable and published. */
  received(frames: ReceivedFrame[]): void {
    this.socket.emit(Events.RECEIVED, frames);
  }

  /**
   * Stops (or restarts) reading from the connection: the websocket under the engine's transport. False
   * when there is no such socket to pause (then reads go on; the caller's budget is not enforced).
   */
  pauseReading(paused: boolean): boolean {
    const ws = (this.socket.conn as unknown as { transport?: { socket?: Pausable } }).transport?.socket;
    if (!ws?.pause || !ws.resume) return false;
    if (paused) ws.pause();
    else ws.resume();
    return true;
  }

  /** Ends the connection (no reconnection is asked of the peer). */
  disconnect(): void {
    this.socket.disconnect(true);
  }
}
