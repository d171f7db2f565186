/**
 * The one raw protocol client for tests that must say what the sender library never would: a Socket.IO
 * client with the msgpack parser, any handshake auth, no reconnection, and untyped requests.
 */
import { crc32 } from 'node:zlib';
import { io, type Socket } from 'socket.io-client';
import { msgpackParser, PROTOCOL_VERSION, type ChunkFrame, type Reply } from '@relayer/common';
import { track } from './lifecycle.js';
import { TOKEN } from './peers.js';

export interface RawClient {
  socket: Socket;
  /** Emits `event` with `frame` and resolves with the raw reply (whatever its shape). */
  request<T = object>(event: string, frame: unknown, timeoutMs?: number): Promise<Reply<T>>;
  /** Every "received" event so far, as sent. */
  received: unknown[];
}

/** Connects with `auth` (default: the test token and this protocol version); rejects on connect_error. */
export async function rawClient(url: string, auth: Record<string, unknown> = { token: TOKEN, protocol: PROTOCOL_VERSION }): Promise<RawClient> {
  const socket = io(url, { transports: ['websocket'], parser: msgpackParser, auth, reconnection: false } as Parameters<typeof io>[1]);
  track(() => socket.disconnect());
  const received: unknown[] = [];
  socket.on('received', (frames: unknown) => void received.push(frames));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return {
    socket,
    received,
    request: async <T>(event: string, frame: unknown, timeoutMs = 5000) => (await socket.timeout(timeoutMs).emitWithAck(event, frame)) as Reply<T>,
  };
}

/** A chunk frame with the right crc32 (pass `crc` to corrupt it). */
export function chunkOf(lease: string, offset: number, data: Uint8Array, crc = crc32(data)): ChunkFrame {
  return { lease, offset, crc, data };
}
