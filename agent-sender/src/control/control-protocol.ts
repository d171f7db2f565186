/**
 * The local control protocol between `relay` and the sender agent: JSON messages over a websocket on a
 * Unix socket. A send request is answered by the job's event stream; closing the socket cancels the job.
 * Replies come several to a websocket message, one JSON per line: a send of thousands of small files has
 * thousands of events a second, and one message (and one socket write) each cost the agent and the client
 * more than the files did. (`relay` and the agent ship together: there is no one-per-message mode.)
 */
import { createError, ErrorCode, type ThenSpec } from '@relayer/common';
import type { ReleaseSpec } from '../job/deploy-options.js';
import type { JobEvent } from '../job/job-events.js';
import type { NodeReleases } from '../job/release-admin.js';
import type { LinkSnapshot } from '../link/link.js';
import type { TransferOptions } from '../transfer/transfer-options.js';

export interface SendRequest {
  type: 'send';
  /** Absolute paths (the client resolves them against its own working directory). */
  paths: string[];
  as?: string;
  /** Receiver names, or ["all"]. */
  to: string[];
  transfer: Partial<TransferOptions>;
  /** A deploy: the files become a new release of this name on every target, switched to once all staged. */
  release?: Partial<ReleaseSpec>;
  /** The node action to run on each target after its files are published (after the switch, for a release). */
  then?: Partial<ThenSpec>;
}

export interface StatusRequest {
  type: 'status';
}

/** `relay releases NAME --to …`: answered by one ReleasesReply. */
export interface ReleasesRequest {
  type: 'releases';
  release: string;
  to: string[];
  timeoutMs?: number;
}

/** `relay rollback NAME --to …`: answered by release (and action) events, then done. */
export interface RollbackRequest {
  type: 'rollback';
  release: string;
  to: string[];
  /** The release id to switch back to; default each node's previous one. */
  id?: string;
  then?: Partial<ThenSpec>;
  timeoutMs?: number;
}

export type ControlRequest = SendRequest | StatusRequest | ReleasesRequest | RollbackRequest;

export interface ReleasesReply {
  type: 'releases';
  release: string;
  nodes: NodeReleases[];
}

export interface TransferSnapshot {
  receiver: string;
  name: string;
  size: number;
  acked: number;
  state: string;
}

export interface StatusReply {
  type: 'status';
  receivers: LinkSnapshot[];
  transfers: TransferSnapshot[];
}

export interface ErrorReply {
  type: 'error';
  code: ErrorCode;
  message: string;
}

export type ControlMessage = JobEvent | StatusReply | ReleasesReply | ErrorReply;

/** The control socket when none is given: a private folder (the CLIs take RELAY_SOCKET through their --socket option). */
export { defaultSocketPath } from './socket-trust.js';

export function isControlRequest(v: unknown): v is ControlRequest {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  if (r.type === 'status') return true;
  const targets = Array.isArray(r.to) && r.to.every((t) => typeof t === 'string');
  const optionalObject = (v: unknown): boolean => v === undefined || (typeof v === 'object' && v !== null);
  if (r.type === 'releases' || r.type === 'rollback') {
    return typeof r.release === 'string' && targets && (r.timeoutMs === undefined || typeof r.timeoutMs === 'number')
      && (r.id === undefined || typeof r.id === 'string') && optionalObject(r.then);
  }
  return r.type === 'send' && Array.isArray(r.paths) && r.paths.every((p) => typeof p === 'string')
    && Array.isArray(r.to) && r.to.every((t) => typeof t === 'string')
    && (r.as === undefined || typeof r.as === 'string')
    && typeof r.transfer === 'object' && r.transfer !== null && optionalObject(r.release) && optionalObject(r.then);
}

/**
 * The replies in one websocket message: one JSON per line (JSON never holds a raw
 * newline). Throws unless every line is an object with a string `type`.
 */
export function splitReplies(data: string): ControlMessage[] {
  return data.split('\n').map((line) => {
    const m = JSON.parse(line) as unknown;
    if (typeof m !== 'object' || m === null || typeof (m as { type?: unknown }).type !== 'string') throw new TypeError('not a control message');
    return m as ControlMessage;
  });
}

/** What the shape check cannot say: a send names at least one path and one receiver. Throws USAGE. */
export function checkSendRequest(req: SendRequest): void {
  if (req.paths.length === 0) throw createError(ErrorCode.USAGE, 'no file to send');
  if (req.to.length === 0) throw createError(ErrorCode.USAGE, 'no receiver to send to (--to name, or all)');
}
