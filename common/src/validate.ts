/** Shape checks for every decoded frame: a peer's input is untrusted until one of these says otherwise. */
import type { AbortFrame, ChunkFrame, CommitFrame, HeartbeatFrame, OfferFrame } from './events.js';
import { MAX_CHUNK_SIZE } from './events.js';

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}
function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 128;
}

export function isOfferFrame(v: unknown): v is OfferFrame {
  return isObject(v) && typeof v.name === 'string' && v.name.length <= 4096 && isSize(v.size)
    && typeof v.mtimeMs === 'number' && Number.isFinite(v.mtimeMs) && (v.fresh === undefined || typeof v.fresh === 'boolean');
}

export function isChunkFrame(v: unknown): v is ChunkFrame {
  return isObject(v) && isId(v.transfer) && isSize(v.offset)
    && typeof v.crc === 'number' && Number.isInteger(v.crc) && v.crc >= 0 && v.crc <= 0xffffffff
    && v.data instanceof Uint8Array && v.data.length > 0 && v.data.length <= MAX_CHUNK_SIZE;
}

export function isCommitFrame(v: unknown): v is CommitFrame {
  return isObject(v) && isId(v.transfer) && typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256);
}

export function isAbortFrame(v: unknown): v is AbortFrame {
  return isObject(v) && isId(v.transfer);
}

export function isHeartbeatFrame(v: unknown): v is HeartbeatFrame {
  return isObject(v) && isSize(v.seq) && typeof v.sentAt === 'number' && Number.isFinite(v.sentAt)
    && (v.intervalMs === undefined || (isSize(v.intervalMs) && v.intervalMs > 0));
}

export function isAckCallback(v: unknown): v is (...args: never[]) => void {
  return typeof v === 'function';
}
