/**
 * Shape checks for every decoded frame, requests and replies alike: a peer's input is untrusted until one
 * of these says otherwise. Every number from a peer is bounded here.
 */
import type {
  AbortFrame, ChunkAck, ChunkFrame, CommitAck, CommitFrame, HeartbeatFrame, IdenticalFrame, IdenticalReply, OfferAccepted,
  OfferFrame, PutFile, PutFrame, PutReply, PutResult, ReceivedFrame, ReceiverStatus,
} from './frames.js';
import { MAX_CHUNK_SIZE, MAX_HEARTBEAT_MS, MAX_NAME_LENGTH, MAX_PUT_FILE_SIZE, MAX_PUT_FILES, MAX_PUT_ID, putFileCost } from './frames.js';

export type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}
export function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
export function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= 8.64e15;
}
export function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 128;
}
export function isText(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length <= max;
}
export function isSha256(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
}

export function isOfferFrame(v: unknown): v is OfferFrame {
  return isObject(v) && isText(v.name, MAX_NAME_LENGTH) && isSize(v.size)
    && isTime(v.mtimeMs) && (v.fresh === undefined || typeof v.fresh === 'boolean')
    && (v.allocated === undefined || (isSize(v.allocated) && v.allocated <= v.size));
}

export function isOfferAccepted(v: unknown): v is OfferAccepted {
  return isObject(v) && isId(v.lease) && isSize(v.offset) && typeof v.tookOver === 'boolean'
    && (v.existingSize === undefined || isSize(v.existingSize))
    && (v.prefixSha256 === undefined || isSha256(v.prefixSha256));
}

export function isChunkFrame(v: unknown): v is ChunkFrame {
  return isObject(v) && isId(v.lease) && isSize(v.offset)
    && typeof v.crc === 'number' && Number.isInteger(v.crc) && v.crc >= 0 && v.crc <= 0xffffffff
    && v.data instanceof Uint8Array && v.data.length > 0 && v.data.length <= MAX_CHUNK_SIZE;
}

export function isChunkAck(v: unknown): v is ChunkAck {
  return isObject(v) && isSize(v.offset) && typeof v.taken === 'boolean';
}

export function isIdenticalFrame(v: unknown): v is IdenticalFrame {
  return isObject(v) && isId(v.lease) && isSha256(v.sha256);
}

export function isIdenticalReply(v: unknown): v is IdenticalReply {
  return isObject(v) && typeof v.identical === 'boolean';
}

/** A commit's ack carries nothing beyond `ok`. */
export function isCommitAck(v: unknown): v is CommitAck {
  return isObject(v) && Object.keys(v).length === 0;
}

export function isCommitFrame(v: unknown): v is CommitFrame {
  return isObject(v) && isId(v.lease) && isSha256(v.sha256);
}

function isPutFile(v: unknown): v is PutFile {
  return isObject(v) && isText(v.name, MAX_NAME_LENGTH) && isSha256(v.sha256)
    && v.data instanceof Uint8Array && v.data.length <= MAX_PUT_FILE_SIZE;
}

export function isPutFrame(v: unknown): v is PutFrame {
  if (!isObject(v) || !isText(v.id, MAX_PUT_ID) || v.id.length === 0) return false;
  if (!Array.isArray(v.files) || v.files.length === 0 || v.files.length > MAX_PUT_FILES) return false;
  let cost = 0;
  for (const f of v.files) {
    if (!isPutFile(f)) return false;
    cost += putFileCost(f.name.length, f.data.length);
  }
  return cost <= MAX_CHUNK_SIZE;
}

function isPutResult(v: unknown): v is PutResult {
  // An error's code is checked where it is used (fromWireError): an unknown one becomes PROTOCOL there.
  return isObject(v) && (v.ok === true || (v.ok === false && isObject(v.error) && isText(v.error.code, 64) && isText(v.error.message, 4096)));
}

export function isPutReply(v: unknown): v is PutReply {
  return isObject(v) && Array.isArray(v.results) && v.results.length <= MAX_PUT_FILES && v.results.every(isPutResult);
}

/** A "received" event: the files it confirms, one or (a put) up to MAX_PUT_FILES. */
export function isReceivedFrames(v: unknown): v is ReceivedFrame[] {
  return Array.isArray(v) && v.length > 0 && v.length <= MAX_PUT_FILES && v.every(isReceivedFrame);
}

export function isReceivedFrame(v: unknown): v is ReceivedFrame {
  return isObject(v) && isId(v.lease) && isText(v.name, MAX_NAME_LENGTH) && isSize(v.size) && isSha256(v.sha256)
    && isText(v.path, 2 * MAX_NAME_LENGTH) && typeof v.unchanged === 'boolean'
    && (v.node === undefined || isText(v.node, 256)) && (v.displayPath === undefined || isText(v.displayPath, 2 * MAX_NAME_LENGTH));
}

export function isAbortFrame(v: unknown): v is AbortFrame {
  return isObject(v) && isId(v.lease);
}

export function isHeartbeatFrame(v: unknown): v is HeartbeatFrame {
  return isObject(v) && isSize(v.seq) && isTime(v.sentAt)
    && (v.intervalMs === undefined || (isSize(v.intervalMs) && v.intervalMs > 0 && v.intervalMs <= MAX_HEARTBEAT_MS));
}

export function isReceiverStatus(v: unknown): v is ReceiverStatus {
  return isObject(v) && isSize(v.seq) && isText(v.node, 256) && isText(v.version, 64) && isSize(v.protocol)
    && isSize(v.freeBytes) && isSize(v.activeTransfers) && isSize(v.uptimeSec);
}

export function isAckCallback(v: unknown): v is (...args: never[]) => void {
  return typeof v === 'function';
}
