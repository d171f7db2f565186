/** The `relay` side of the control socket: sends one request, streams the answer. */
import path from 'node:path';
import WebSocket from 'ws';
import { elide, ErrorCode, formatBytes, formatDuration, printable, RelayError, type ThenSpec } from '@relayer/common';
import {
  defaultSocketPath, splitReplies, type ControlMessage, type ControlRequest, type ReleasesReply, type ReleasesRequest,
  type RollbackRequest, type SendRequest, type StatusReply,
} from './control-protocol.js';
import type { ReleaseSpec } from '../job/deploy-options.js';
import { ExitCode } from '../cli/exit-codes.js';
import { checkSocketTrust, permissionHint, SocketTrustError, trustedOwners } from './socket-trust.js';
import type { JobEvent } from '../job/job-events.js';
import type { TransferOptions } from '../transfer/transfer-options.js';

export { defaultSocketPath };

/** The agent's socket could not be reached, or must not be trusted: `relay` exits 3. */
export class AgentUnreachableError extends RelayError {
  constructor(readonly socketPath: string, reason: string, hint = '(is relay-sender running? set --socket or RELAY_SOCKET)') {
    super(ErrorCode.UNREACHABLE, `cannot reach the sender agent at ${socketPath}: ${reason} ${hint}`);
  }
}

async function connect(socketPath: string, agentUser: string | undefined): Promise<WebSocket> {
  try {
    await checkSocketTrust(path.resolve(socketPath), trustedOwners(agentUser));
  } catch (err) {
    if (err instanceof SocketTrustError) throw new AgentUnreachableError(socketPath, err.message, '(refusing to talk to it)');
    throw err;
  }
  const failure = await new Promise<WebSocket | NodeJS.ErrnoException>((resolve) => {
    const ws = new WebSocket(`ws+unix://${path.resolve(socketPath)}:/control`, { perMessageDeflate: false });
    ws.once('open', () => {
      ws.removeAllListeners('error');
      resolve(ws);
    });
    ws.once('error', (err: NodeJS.ErrnoException) => resolve(err));
  });
  if (failure instanceof WebSocket) return failure;
  if (failure.code === 'EACCES' || failure.code === 'EPERM') throw new AgentUnreachableError(socketPath, await permissionHint(socketPath), '');
  throw new AgentUnreachableError(socketPath, failure.code ?? failure.message);
}

/** Sends one request and hands every message to onMessage until it returns true or the agent closes. */
async function exchange(socketPath: string, request: ControlRequest, onMessage: (m: ControlMessage) => boolean, signal?: AbortSignal, agentUser?: string): Promise<void> {
  const ws = await connect(socketPath, agentUser);
  await new Promise<void>((resolve, reject) => {
    let finished = false;
    const finish = (err?: Error): void => {
      if (finished) return;
      finished = true;
      signal?.removeEventListener('abort', onAbort);
      ws.close();
      if (err) reject(err);
      else resolve();
    };
    // Closing the socket is how a job is cancelled: the agent stops the transfer, the receiver keeps the partial.
    const onAbort = (): void => finish(new RelayError(ErrorCode.CANCELLED, 'cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    ws.on('message', (data) => {
      let msgs: ControlMessage[];
      try {
        msgs = splitReplies(String(data));
      } catch {
        return finish(new RelayError(ErrorCode.PROTOCOL, 'malformed message from the sender agent'));
      }
      for (const msg of msgs) {
        if (finished) return;
        if (msg.type === 'error') return finish(new RelayError(msg.code, msg.message));
        if (onMessage(msg)) return finish();
      }
    });
    ws.on('close', () => finish(new RelayError(ErrorCode.DISCONNECTED, 'the sender agent closed the connection before the job finished')));
    ws.on('error', (err) => finish(new RelayError(ErrorCode.DISCONNECTED, `control socket error: ${err.message}`)));
    ws.send(JSON.stringify(request));
  });
}

export interface AgentSendOptions {
  socketPath: string;
  paths: string[];
  as?: string;
  to: string[];
  transfer: Partial<TransferOptions>;
  release?: Partial<ReleaseSpec>;
  then?: Partial<ThenSpec>;
  signal?: AbortSignal;
  /** The agent's user (name or uid), trusted to own the socket besides root and the caller (env RELAY_AGENT_USER). */
  agentUser?: string;
}

export async function sendViaAgent(opts: AgentSendOptions, emit: (e: JobEvent) => void): Promise<boolean> {
  return streamJob(opts.socketPath, {
    type: 'send', paths: opts.paths.map((p) => path.resolve(p)), as: opts.as, to: opts.to, transfer: opts.transfer,
    ...(opts.release ? { release: opts.release } : {}), ...(opts.then ? { then: opts.then } : {}),
  }, emit, opts.signal, opts.agentUser);
}

/** A request answered by job events up to `done` (a send, a rollback); true when done says ok. */
export async function streamJob(socketPath: string, request: SendRequest | RollbackRequest, emit: (e: JobEvent) => void, signal?: AbortSignal, agentUser?: string): Promise<boolean> {
  let ok = false;
  await exchange(socketPath, request, (m) => {
    if (m.type === 'status' || m.type === 'error' || m.type === 'releases') return false;
    emit(m);
    if (m.type === 'done') {
      ok = m.ok;
      return true;
    }
    return false;
  }, signal, agentUser);
  return ok;
}

export async function releasesViaAgent(socketPath: string, request: ReleasesRequest, agentUser?: string): Promise<ReleasesReply> {
  let reply: ReleasesReply | undefined;
  await exchange(socketPath, request, (m) => {
    if (m.type !== 'releases') return false;
    reply = m;
    return true;
  }, undefined, agentUser);
  return reply!;
}

export async function fetchStatus(socketPath: string, agentUser?: string): Promise<StatusReply> {
  let reply: StatusReply | undefined;
  await exchange(socketPath, { type: 'status' }, (m) => {
    if (m.type !== 'status') return false;
    reply = m;
    return true;
  }, undefined, agentUser);
  return reply!;
}

/**
 * `relay status`: the receivers and the transfers in flight. Exits 0 when every receiver is connected,
 * 1 when any is not (or none is known), so a pipeline can gate a deploy on it; --json prints the same
 * object either way.
 */
export async function statusViaAgent(socketPath: string, json: boolean, agentUser?: string): Promise<number> {
  const s = await fetchStatus(socketPath, agentUser);
  const allUp = s.receivers.length > 0 && s.receivers.every((r) => r.state === 'connected');
  const code = allUp ? ExitCode.OK : ExitCode.FAILED;
  if (json) {
    process.stdout.write(`${JSON.stringify({ receivers: s.receivers, transfers: s.transfers })}\n`);
    return code;
  }
  const rows = s.receivers.map((r) => [
    r.name, r.state, r.rttMs === null ? '-' : `${r.rttMs}ms`,
    r.lastHeartbeatAgoMs === null ? '-' : `${formatDuration(r.lastHeartbeatAgoMs)} ago`,
    r.node ?? '-', r.freeBytes === null ? '-' : formatBytes(r.freeBytes), r.url,
    r.state === 'connected' || !r.lastError ? '-' : `${r.lastError.code}: ${printable(elide(r.lastError.message, 100))}`,
  ]);
  process.stdout.write(rows.length ? table(['RECEIVER', 'STATE', 'RTT', 'LAST BEAT', 'NODE', 'FREE', 'URL', 'LAST ERROR'], rows) : 'no receivers known to the agent\n');
  if (s.transfers.length === 0) process.stdout.write('no transfers in flight\n');
  else {
    process.stdout.write('\n');
    process.stdout.write(table(['TRANSFER', 'TO', 'STATE', 'PROGRESS'], s.transfers.map((t) => [
      t.name, t.receiver, t.state, `${t.size ? Math.floor((t.acked * 100) / t.size) : 100}% ${formatBytes(t.acked)}/${formatBytes(t.size)}`,
    ])));
  }
  if (!allUp) {
    const down = s.receivers.filter((r) => r.state !== 'connected').map((r) => r.name);
    process.stderr.write(down.length ? `not connected: ${down.join(', ')}\n` : 'no receivers: configure --receiver or --discover on the agent\n');
  }
  return code;
}

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)].join('\n') + '\n';
}
