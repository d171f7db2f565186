/**
 * Small files travel whole, many to a put frame: one round trip and one fsync of each folder for a batch,
 * instead of an offer, a chunk and a commit (three round trips) per file. Each file is still read from
 * the version that was opened (checked unchanged after the read), hashed, and confirmed only by its own
 * "received" (one event for the files of a put, before its ack), sent after the receiver matched its
 * sha256 and made it durable under its final name.
 */
import { randomUUID } from 'node:crypto';
import {
  createError, ErrorCode, fromWireError, MAX_CHUNK_SIZE, MAX_PUT_FILES, putFileCost, putLease,
  type ReceivedFrame, type RelayError,
} from '@relayer/common';
import { BATCH_LIMITS } from '../limits.js';
import type { Link } from '../link/link.js';
import type { SourceFile } from './file-list.js';

/** One file read whole, as it goes into a put frame. */
export interface SmallFile {
  source: SourceFile;
  sha256: string;
  data: Buffer;
}

export interface BatchLimits {
  /** Files per put frame. */
  files: number;
  /** Bytes per put frame (data, and names at their longest). */
  bytes: number;
}

/**
 * Groups files (each small enough for a put frame) into batches within the limits, in order. Lazy: a job
 * of 100,000 files plans each batch as a slot frees up, not all of them up front.
 */
export function* planBatches(files: Iterable<SourceFile>, limits: BatchLimits = BATCH_LIMITS): Generator<SourceFile[]> {
  const maxFiles = Math.min(limits.files, MAX_PUT_FILES);
  const maxBytes = Math.min(limits.bytes, MAX_CHUNK_SIZE);
  let batch: SourceFile[] = [];
  let bytes = 0;
  for (const f of files) {
    const cost = putFileCost(f.name.length, f.size);
    if (batch.length > 0 && (batch.length >= maxFiles || bytes + cost > maxBytes)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(f);
    bytes += cost;
  }
  if (batch.length > 0) yield batch;
}

/**
 * Sends one batch to one receiver. Per file, in order: its confirmation, or the coded error the receiver
 * gave for it. Throws when the request as a whole failed (connection lost, timeout, disk full).
 */
export async function putBatch(link: Link, files: readonly SmallFile[], timeoutMs: number): Promise<Array<ReceivedFrame | RelayError>> {
  const id = randomUUID();
  const leases = files.map((_, i) => putLease(id, i));
  const frame = { id, files: files.map((f) => ({ name: f.source.name, sha256: f.sha256, data: f.data })) };
  const { reply: { results }, received } = await link.requestConfirming('put', frame, timeoutMs, leases);
  if (results.length !== files.length) {
    throw createError(ErrorCode.PROTOCOL, `receiver ${link.name} answered ${results.length} results for ${files.length} files`);
  }
  return results.map((r, i) => {
    if (!r.ok) return fromWireError(r.error);
    const file = files[i]!;
    const c = received[i];
    if (!c) return createError(ErrorCode.PROTOCOL, `receiver ${link.name} acked ${file.source.name} without a "received" confirmation`);
    if (c.sha256 !== file.sha256 || c.size !== file.data.length || c.name !== file.source.name) {
      return createError(ErrorCode.CHECKSUM, `receiver ${link.name} confirmed ${c.name} ${c.size} ${c.sha256}, expected ${file.source.name} ${file.data.length} ${file.sha256}`);
    }
    return c;
  });
}
