/**
 * The sender agent: one persistent, heartbeating Link per configured receiver, a control socket for
 * `relay`, and a job queue under one concurrency limit. It only sends files under its allow-roots.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import { createError, ErrorCode, formatBytes, type Logger } from '@relayer/common';
import { resolveSenderAgentOptions, type SenderAgentOptions } from './agent-options.js';
import { checkSendRequest, type ControlMessage, type ControlRequest, type SendRequest, type StatusReply } from './control-protocol.js';
import { ControlServer } from './control-server.js';
import { runJob } from './job.js';
import { Link } from './link.js';
import type { OutgoingTransfer } from './outgoing-transfer.js';
import { checkTransferOptions } from './transfer-options.js';
import { checkAllowed, expandSources, openAllowed } from './sources.js';

export class SenderAgent {
  readonly options: SenderAgentOptions;
  readonly links = new Map<string, Link>();
  private readonly log: Logger;
  private readonly limit: LimitFunction;
  private readonly control: ControlServer;
  private readonly transfers = new Set<OutgoingTransfer>();
  /** Aborted by close(): every running job's signal follows it. */
  private readonly closing = new AbortController();
  private summaryTimer: NodeJS.Timeout | undefined;
  private jobSeq = 0;

  constructor(options: Partial<SenderAgentOptions> & { token: string }) {
    this.options = resolveSenderAgentOptions(options);
    this.log = this.options.logger;
    this.limit = pLimit(this.options.concurrency);
    this.control = new ControlServer(this.options.socketPath, (req, reply, signal) => this.handle(req, reply, signal), this.log);
  }

  async start(): Promise<void> {
    const { receivers, heartbeatMs, token, summaryEveryMs, socketPath, allowRoots } = this.options;
    await this.control.start();
    for (const r of receivers) {
      this.links.set(r.name, new Link({ name: r.name, url: r.url, token, heartbeatMs, logger: this.log, retryAuth: true }).start());
    }
    if (summaryEveryMs > 0) {
      this.summaryTimer = setInterval(() => this.logSummary(), summaryEveryMs);
      this.summaryTimer.unref();
    }
    if (allowRoots.length === 0) this.log.warn('no --allow-root given: every send will be refused');
    this.log.info({ socket: socketPath, receivers: receivers.map((r) => `${r.name}=${r.url}`), allowRoots }, 'sender agent started');
  }

  async close(): Promise<void> {
    clearInterval(this.summaryTimer);
    this.closing.abort();
    await this.control.close();
    for (const l of this.links.values()) l.close();
    this.log.info('sender agent closed');
  }

  status(): StatusReply {
    return {
      type: 'status',
      receivers: [...this.links.values()].map((l) => l.snapshot()),
      transfers: [...this.transfers].map((t) => ({ receiver: t.receiver, name: t.name, size: t.size, acked: t.acked, state: t.state })),
    };
  }

  private logSummary(): void {
    const parts = [...this.links.values()].map((l) => `${l.name}=${l.state}${l.rttMs === null ? '' : `/${l.rttMs}ms`}`);
    const inflight = [...this.transfers].reduce((n, t) => n + (t.size - t.acked), 0);
    this.log.info({ receivers: Object.fromEntries([...this.links.values()].map((l) => [l.name, l.state])), transfers: this.transfers.size },
      `status: ${parts.join(' ') || 'no receivers'}; ${this.transfers.size} transfer(s), ${formatBytes(inflight)} to go`);
  }

  private async handle(req: ControlRequest, reply: (m: ControlMessage) => void, signal: AbortSignal): Promise<void> {
    if (req.type === 'status') return reply(this.status());
    await this.send(req, reply, signal);
  }

  /**
   * Configured receivers by name or URL, or "all". Never a URL the agent was not configured with: the
   * token would go to whoever listens there.
   */
  private resolveTargets(to: string[]): Link[] {
    if (to.length === 1 && to[0] === 'all') {
      if (this.links.size === 0) throw createError(ErrorCode.UNREACHABLE, 'no receivers configured (--receiver name=url)');
      return [...this.links.values()];
    }
    return [...new Set(to)].map((t) => {
      const known = this.links.get(t) ?? [...this.links.values()].find((l) => l.url === t);
      if (!known) throw createError(ErrorCode.UNREACHABLE, `unknown receiver ${JSON.stringify(t)}; this agent sends only to its configured receivers: ${[...this.links.keys()].join(', ') || 'none'}`);
      return known;
    });
  }

  private async send(req: SendRequest, reply: (m: ControlMessage) => void, signal: AbortSignal): Promise<void> {
    const log = this.log.child({ job: ++this.jobSeq });
    const allowRoots = this.options.allowRoots;
    checkSendRequest(req);
    const transfer = checkTransferOptions(req.transfer);
    const links = this.resolveTargets(req.to);
    // Check what the user named before walking it: a directory outside every root is not even listed.
    // Each file is checked again where it counts: on the descriptor opened when its transfer starts.
    for (const p of req.paths) await checkAllowed(p, allowRoots);
    const { files, skipped } = await expandSources(req.paths, req.as);
    // Cancelled when the client goes away or the agent closes.
    const jobSignal = AbortSignal.any([signal, this.closing.signal]);
    log.info({ files: files.length, targets: links.map((l) => l.name) }, 'job started');
    const ok = await runJob({ files, skipped, targets: links, transfer, open: (f) => openAllowed(f, allowRoots) }, {
      limit: this.limit,
      logger: log,
      signal: jobSignal,
      track: (t, running) => void (running ? this.transfers.add(t) : this.transfers.delete(t)),
    }, (e) => {
      if (e.type === 'received') log.info({ receiver: e.target, file: e.name, size: e.size, sha256: e.sha256 }, 'confirmed');
      else if (e.type === 'failed') log.warn({ receiver: e.target, file: e.name, code: e.code, reason: e.message }, 'transfer failed');
      reply(e);
    });
    log.info({ ok, cancelled: jobSignal.aborted }, jobSignal.aborted ? 'job cancelled' : 'job finished');
  }
}
