/**
 * The wire protocol between a sender and a receiver, defined once. Every frame a peer decodes is checked
 * with the predicates in validate.ts before it is used.
 */
import type { WireError } from './errors.js';

/** Socket.IO event names. */
export const Events = {
  OFFER: 'offer',
  CHUNK: 'chunk',
  COMMIT: 'commit',
  ABORT: 'abort',
  HEARTBEAT: 'heartbeat',
  RECEIVED: 'received',
} as const;
export type EventName = (typeof Events)[keyof typeof Events];

/** Largest chunk a receiver accepts; the Socket.IO buffer limit is sized from it. */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const DEFAULT_WINDOW = 8;
export const DEFAULT_PORT = 7420;
/** Room for the msgpack envelope around a chunk's bytes. */
export const FRAME_OVERHEAD = 64 * 1024;

/** What identifies one version of a source file; a resume continues only when it is unchanged. */
export interface SourceIdentity {
  size: number;
  mtimeMs: number;
}

/** Sender → receiver: "I want to send this file". */
export interface OfferFrame {
  /** Relative path under the receiver's folder, '/'-separated. */
  name: string;
  size: number;
  mtimeMs: number;
  /** Discard whatever the receiver holds for this name and start at 0 (its bytes did not match ours). */
  fresh?: boolean;
}

export interface OfferAccepted {
  /** Id for this attempt; chunks and the commit carry it. */
  transfer: string;
  /** Bytes the receiver already holds for this file and source identity: send from here. */
  offset: number;
  /** The final file exists with this size: the sender may commit its sha256 without sending bytes. */
  existingSize?: number;
  /**
   * sha256 of the `offset` bytes held, when offset > 0. Size and mtime can match for different contents
   * (a reproducible build, `cp -p`): the sender compares this with its own prefix before resuming.
   */
  prefixSha256?: string;
}

export interface ChunkFrame {
  transfer: string;
  offset: number;
  /** crc32 (zlib) of data. */
  crc: number;
  data: Uint8Array;
}

export interface ChunkAck {
  /** Contiguous bytes written so far; a sender whose next chunk is elsewhere rewinds to it. */
  offset: number;
}

export interface CommitFrame {
  transfer: string;
  sha256: string;
}

export interface AbortFrame {
  transfer: string;
}

/** Receiver → sender: the file is verified, durable and published under its final name. */
export interface ReceivedFrame {
  transfer: string;
  name: string;
  size: number;
  sha256: string;
  /** Absolute path where the receiver wrote the file (inside its container, when it runs in one). */
  path: string;
  /** The same file as the node's host sees it, when the receiver was told its host folder (--display-dir). */
  displayPath?: string;
  /** The receiver's node name (--node), so a confirmation always says where the file is. */
  node?: string;
  /** True when the receiver already had these exact bytes and none were sent. */
  unchanged: boolean;
}

export interface HeartbeatFrame {
  seq: number;
  /** Sender's clock, ms since the epoch. */
  sentAt: number;
  /** The sender's beat interval, so the receiver can tell when its beats stop. */
  intervalMs?: number;
}

export interface ReceiverStatus {
  seq: number;
  node: string;
  version: string;
  /** Free bytes in the receiver's folder (what an offer may use before --min-free). */
  freeBytes: number;
  activeTransfers: number;
  uptimeSec: number;
}

/** Every acknowledgement is either a result or a coded error. */
export type Reply<T> = ({ ok: true } & T) | { ok: false; error: WireError };

export interface ClientToServerEvents {
  [Events.OFFER]: (frame: OfferFrame, ack: (reply: Reply<OfferAccepted>) => void) => void;
  [Events.CHUNK]: (frame: ChunkFrame, ack: (reply: Reply<ChunkAck>) => void) => void;
  [Events.COMMIT]: (frame: CommitFrame, ack: (reply: Reply<ReceivedFrame>) => void) => void;
  [Events.ABORT]: (frame: AbortFrame) => void;
  [Events.HEARTBEAT]: (frame: HeartbeatFrame, ack: (reply: Reply<ReceiverStatus>) => void) => void;
}

export interface ServerToClientEvents {
  [Events.RECEIVED]: (frame: ReceivedFrame) => void;
}

/** Handshake `auth` payload. */
export interface HandshakeAuth {
  token: string;
  /** Free-form sender identity for the receiver's logs (host name, agent name). */
  sender?: string;
  version?: string;
}
