/**
 * The wire protocol between a sender and a receiver (version 5, PROTOCOL_VERSION), defined once: frame shapes here, their
 * validators in validate.ts, and the request map in protocol.ts from which both sides derive their types.
 *
 * One confirmation path: a file is confirmed only by a "received" event, whichever way it came (chunks and
 * a commit, an identical check, a put). Acks say only what they acknowledge: a commit's ack that the commit
 * was handled, an identical check's whether the bytes were the same, a put's each file's outcome. The
 * receiver emits "received" before the ack (Socket.IO keeps order), so a sender holding the ack has seen
 * every confirmation it covers, or knows it never came.
 */
import type { WireError } from './errors.js';

/** Bumped on any change a peer of the other version would misread; peers of different versions refuse each other. */
export const PROTOCOL_VERSION = 5;

/** Socket.IO event names. */
export const Events = {
  OFFER: 'offer',
  CHUNK: 'chunk',
  IDENTICAL: 'identical',
  COMMIT: 'commit',
  PUT: 'put',
  ABORT: 'abort',
  HEARTBEAT: 'heartbeat',
  RECEIVED: 'received',
  // Releases and node actions (release-frames.ts).
  RELEASE: 'release',
  STAGE: 'stage',
  SWITCH: 'switch',
  ROLLBACK: 'rollback',
  DISCARD: 'discard',
  RELEASES: 'releases',
  ACTION: 'action',
  RUN: 'run',
} as const;
export type EventName = (typeof Events)[keyof typeof Events];

/**
 * Largest chunk a receiver accepts; the Socket.IO buffer limit is sized from it. 2 MiB, not more: ws holds a
 * message twice while it arrives (its reads, then one copy), so each MiB here costs the receiver ~2 MiB of RSS.
 */
export const MAX_CHUNK_SIZE = 2 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const DEFAULT_WINDOW = 8;
export const MAX_WINDOW = 256;
export const DEFAULT_PORT = 7420;
/** Room for the msgpack envelope around a chunk's bytes. */
export const FRAME_OVERHEAD = 64 * 1024;
/** Longest heartbeat interval a peer may announce (a larger one would overflow timers). */
export const MAX_HEARTBEAT_MS = 3_600_000;
/** Longest file name on the wire, in UTF-16 units (the path guard bounds it in bytes). */
export const MAX_NAME_LENGTH = 4096;

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
  /**
   * Only for a sparse source: the bytes it takes on the sender's disk (less than `size`). The receiver
   * then keeps its holes (all-zero blocks are not written) and reserves space for this much.
   */
  allocated?: number;
}

export interface OfferAccepted {
  /** Id of this attempt: chunks, the identical check and the commit carry it. */
  lease: string;
  /** Bytes the receiver already holds for this file and source identity: send from here. */
  offset: number;
  /** The final file exists with this size: worth an `identical` check before sending bytes. */
  existingSize?: number;
  /**
   * sha256 of the `offset` bytes held, when offset > 0. Size and mtime can match for different contents
   * (a reproducible build, `cp -p`): the sender compares this with its own prefix before resuming.
   */
  prefixSha256?: string;
  /** This offer took the transfer from another live connection (which is sending the same name right now). */
  tookOver: boolean;
}

export interface ChunkFrame {
  lease: string;
  offset: number;
  /** crc32 (zlib) of data. */
  crc: number;
  data: Uint8Array;
}

export interface ChunkAck {
  /** Contiguous bytes written so far. */
  offset: number;
  /** False when this chunk was not written (a gap or a duplicate): a sender whose chunk ends past offset rewinds. */
  taken: boolean;
}

/** Sender → receiver: "is the file you already have under this name exactly these bytes?" */
export interface IdenticalFrame {
  lease: string;
  sha256: string;
}

export interface IdenticalReply {
  /** True: the transfer is over and its "received" (unchanged) came before this ack. */
  identical: boolean;
}

export interface CommitFrame {
  lease: string;
  sha256: string;
}

/** A commit's ack: handled. The file's confirmation is its "received", which came before; an error, not this, says it failed. */
export type CommitAck = Record<string, never>;

/**
 * Sender → receiver: small files whole, in one frame and one round trip. Each is verified against its
 * sha256, fsynced and published under its own name; the folders are fsynced once for all of them; then the
 * files published are confirmed in one "received" event (file i under the lease `${id}:${i}`), and the ack
 * gives each file's outcome.
 */
export interface PutFrame {
  /** The sender's id for this frame (unique on its connection): the leases of its files' confirmations derive from it. */
  id: string;
  files: PutFile[];
}

/** Longest put id: its files' leases (`${id}:${index}`) stay within a lease's 128 characters. */
export const MAX_PUT_ID = 64;

/** The lease under which file `index` of put `id` is confirmed. */
export function putLease(id: string, index: number): string {
  return `${id}:${index}`;
}

export interface PutFile {
  /** Relative path under the receiver's folder, '/'-separated. */
  name: string;
  /** sha256 of data: the receiver publishes nothing that does not match it. */
  sha256: string;
  data: Uint8Array;
}

/** One result per file of the frame, in the same order. */
export interface PutReply {
  results: PutResult[];
}

export type PutResult =
  /** Verified, durable and published under its name (or already there byte for byte): its "received" came before. */
  | { ok: true }
  | { ok: false; error: WireError };

/** Files in one put frame. */
export const MAX_PUT_FILES = 256;
/** Largest file a put frame may carry; larger ones are offered and sent in chunks. */
export const MAX_PUT_FILE_SIZE = 1024 * 1024;

/**
 * Bytes a put frame counts against MAX_CHUNK_SIZE: its data plus its names at their longest in UTF-8, so
 * the frame with its envelope stays under the receiver's message limit (FRAME_OVERHEAD covers the rest).
 */
export function putFileCost(nameLength: number, dataLength: number): number {
  return dataLength + 3 * nameLength;
}

export interface AbortFrame {
  lease: string;
}

/** Receiver → sender: the file is verified, durable and published under its final name. */
export interface ReceivedFrame {
  lease: string;
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
  /** The sender's beat interval (at most MAX_HEARTBEAT_MS), so the receiver can tell when its beats stop. */
  intervalMs?: number;
}

export interface ReceiverStatus {
  seq: number;
  node: string;
  version: string;
  /** The receiver's PROTOCOL_VERSION: the sender checks it on the first beat of every connection. */
  protocol: number;
  /** Free bytes in the receiver's folder (what an offer may use before --min-free). */
  freeBytes: number;
  activeTransfers: number;
  uptimeSec: number;
}

/** Every acknowledgement is either a result or a coded error. */
export type Reply<T> = ({ ok: true } & T) | { ok: false; error: WireError };

/** Handshake `auth` payload. */
export interface HandshakeAuth {
  token: string;
  /** The sender's PROTOCOL_VERSION; absent means version 1. */
  protocol?: number;
  /** Free-form sender identity for the receiver's logs (host name, agent name). */
  sender?: string;
  version?: string;
}
