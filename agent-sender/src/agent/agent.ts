/**
 * The sender agent: one persistent, heartbeating Link per configured or discovered receiver, a control
 * socket for `relay`, and a job queue under one concurrency limit. It only sends files under its
 * allow-roots. Optionally an http listener serves /healthz and /metrics.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { createError, elide, ErrorCode, formatBytes, VERSION, type Logger } from '@relayer/common';
import { resolveSenderAgentOptions, type SenderAgentOptions } from './agent-options.js';
import { checkSendRequest, type ControlMessage, type ControlRequest, type ReleasesRequest, type RollbackRequest, type SendRequest, type StatusReply } from '../control/control-protocol.js';
import { ControlServer } from '../control/control-server.js';
import { Discovery } from '../link/discovery.js';
import { AgentHttpServer, type AgentHealth } from './http-server.js';
import type { TransferView } from '../job/job.js';
import type { JobEvent } from '../job/job-events.js';
import { runDeploy } from '../job/deploy.js';
import { checkDeploy, checkRelease, checkReleaseId, checkThen, namesInRelease, refuseAsWithRelease } from '../job/deploy-options.js';
import { nodeRequestOptions } from '../job/node-request.js';
import { listReleases, rollbackAll } from '../job/release-admin.js';
import { Link } from '../link/link.js';
import { SenderMetrics } from './metrics.js';
import { OutgoingTransfer } from '../transfer/outgoing-transfer.js';
import { checkTransferOptions } from '../transfer/transfer-options.js';
import { FileHasher } from '@relayer/common/file-hasher';
import { SharedHashes } from '../transfer/shared-hashes.js';
import { ManifestCache } from '../job/manifest-cache.js';
import { SmallFileReader } from '../job/small-file-reader.js';
import { AllowRoots, checkAllowed, expandSources, openAllowed } from '../job/sources.js';

export class SenderAgent {
  readonly options: SenderAgentOptions;
  readonly links = new Map<string, Link>();
  private readonly log: Logger;
  private readonly limit: LimitFunction;
  private readonly control: ControlServer;
  private readonly transfers = new Set<TransferView>();
  /** Aborted by close(): every running job's signal follows it. */
  private readonly closing = new AbortController();
  private summaryTimer: NodeJS.Timeout | undefined;
  private jobSeq = 0;
  readonly metrics: SenderMetrics;
  /** One per --discover name. */
  readonly discoveries: Discovery[];
  private readonly http: AgentHttpServer | undefined;
  private readonly startedAt = Date.now();
  /** Fixed at start: a root swapped for a symlink later does not widen access. */
  private allowRoots: AllowRoots | undefined;
  private reader: SmallFileReader | undefined;
  private readonly hasher: FileHasher;
  /** Two jobs sending the same version of a file (to different receivers) hash it once. */
  private readonly hashes: SharedHashes;
  private readonly manifests = new ManifestCache();

  constructor(options: Partial<SenderAgentOptions> & { token: string }) {
    this.options = resolveSenderAgentOptions(options);
    this.log = this.options.logger;
    this.hasher = new FileHasher({ threads: this.options.hashThreads });
    this.hashes = new SharedHashes({ hasher: this.hasher });
    this.limit = pLimit(this.options.concurrency);
    this.control = new ControlServer(this.options.socketPath, (req, reply, signal) => this.handle(req, reply, signal), this.log, { group: this.options.socketGroup });
    this.metrics = new SenderMetrics({ links: () => this.links.values(), activeTransfers: () => this.transfers.size });
    const { discover, resolver, discoverEveryMs: everyMs, discoverGraceMs: graceMs, discoverProbeTimeoutMs: probeTimeoutMs, http } = this.options;
    const host = { links: this.links, createLink: (name: string, url: string) => this.createLink(name, url) };
    this.discoveries = discover.map((entry) => new Discovery({ entry, resolver, everyMs, graceMs, probeTimeoutMs, host, logger: this.log }));
    this.http = http && new AgentHttpServer(http, () => this.health(), this.metrics, this.log);
  }

  private createLink(name: string, url: string): Link {
    const { token, heartbeatMs, ca } = this.options;
    return new Link({ name, url, token, heartbeatMs, logger: this.log, retryAuth: true, ca }).start();
  }

  /** The --http listener's address (port 0 in tests picks a free one). */
  httpAddress(): { address: string; port: number } | null {
    return this.http?.address() ?? null;
  }

  health(): AgentHealth {
    const links = [...this.links.values()];
    return {
      status: 'ok', version: VERSION, uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      receivers: links.length, connected: links.filter((l) => l.connected).length, activeTransfers: this.transfers.size,
    };
  }

  async start(): Promise<void> {
    const { receivers, summaryEveryMs, socketPath, allowRoots, discover, discoverProbeTimeoutMs } = this.options;
    this.allowRoots = await AllowRoots.resolve(allowRoots);
    this.reader = new SmallFileReader(this.allowRoots);
    await this.control.start();
    await this.http?.start();
    for (const r of receivers) this.links.set(r.name, this.createLink(r.name, r.url));
    // The first discovery round is waited for (briefly), so a send right after start sees those receivers.
    const firstRounds = Promise.all(this.discoveries.map((d) => d.start()));
    if (this.discoveries.length) await Promise.race([firstRounds, sleep(discoverProbeTimeoutMs + 2000, undefined, { ref: false })]);
    if (summaryEveryMs > 0) {
      this.summaryTimer = setInterval(() => this.logSummary(), summaryEveryMs);
      this.summaryTimer.unref();
    }
    if (allowRoots.length === 0) this.log.warn('no --allow-root given: every send will be refused');
    this.log.info({
      socket: socketPath, receivers: receivers.map((r) => `${r.name}=${r.url}`), discover: discover.map((d) => `${d.host}:${d.port}`),
      discovered: [...this.links.keys()].filter((n) => !receivers.some((r) => r.name === n)), allowRoots,
      http: this.http ? `${this.httpAddress()?.address}:${this.httpAddress()?.port}` : undefined,
    }, 'sender agent started');
  }

  async close(): Promise<void> {
    clearInterval(this.summaryTimer);
    this.closing.abort();
    for (const d of this.discoveries) d.close();
    await this.control.close();
    await this.http?.close();
    for (const l of this.links.values()) l.close();
    await this.reader?.close();
    await this.hasher.close();
    this.log.info('sender agent closed');
  }

  status(): StatusReply {
    return {
      type: 'status',
      receivers: [...[...this.links.values()].map((l) => l.snapshot()), ...this.discoveries.flatMap((d) => d.pendingSnapshots())],
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
    if (req.type === 'releases' || req.type === 'rollback') return this.releaseAdmin(req, reply, signal);
    await this.send(req, reply, signal);
  }

  /**
   * Configured receivers by name or URL, or "all". Never a URL the agent was not configured with: the
   * token would go to whoever listens there.
   */
  private resolveTargets(to: string[]): Link[] {
    if (to.length === 1 && to[0] === 'all') {
      if (this.links.size === 0) {
        const found = this.discoveries.length ? `; none discovered yet behind ${this.discoveries.map((d) => d.label).join(', ')}` : '';
        throw createError(ErrorCode.UNREACHABLE, `no receivers configured (--receiver name=url, --discover name:port)${found}`);
      }
      return [...this.links.values()];
    }
    return [...new Set(to)].map((t) => {
      const known = this.links.get(t) ?? [...this.links.values()].find((l) => l.url === t);
      if (!known) {
        const names = [...this.links.keys()];
        const shown = names.length > 20 ? `${names.slice(0, 20).join(', ')}, … (${names.length} in all)` : names.join(', ') || 'none';
        throw createError(ErrorCode.UNKNOWN_RECEIVER, `unknown receiver ${JSON.stringify(elide(t))}; this agent sends only to its configured and discovered receivers: ${shown}`);
      }
      return known;
    });
  }

  private async send(req: SendRequest, reply: (m: ControlMessage) => void, signal: AbortSignal): Promise<void> {
    const log = this.log.child({ job: ++this.jobSeq });
    const allowRoots = this.allowRoots!;
    checkSendRequest(req);
    const transfer = checkTransferOptions(req.transfer);
    const deploy = checkDeploy(req.release, req.then);
    refuseAsWithRelease(req.as, deploy.release);
    const links = this.resolveTargets(req.to);
    // Check what the user named before walking it: a directory outside every root is not even listed.
    // Each file is checked again where it counts: on the descriptor opened when its transfer starts.
    for (const p of req.paths) await checkAllowed(p, allowRoots);
    const sources = await expandSources(req.paths, req.as);
    const { skipped, unsendable } = sources;
    const files = deploy.release ? namesInRelease(sources.files, req.paths) : sources.files;
    // Cancelled when the client goes away or the agent closes.
    const jobSignal = AbortSignal.any([signal, this.closing.signal]);
    log.info({ files: files.length, targets: links.map((l) => l.name), release: deploy.release?.name, then: deploy.then?.action }, 'job started');
    const ok = await runDeploy({ files, skipped, unsendable, targets: links, transfer, open: (f) => openAllowed(f, allowRoots), ...deploy }, {
      limit: this.limit,
      reader: this.reader!,
      hashes: this.hashes,
      manifests: this.manifests,
      logger: log,
      signal: jobSignal,
      track: (t, running) => {
        if (running) this.transfers.add(t);
        else this.transfers.delete(t);
        if (t instanceof OutgoingTransfer) this.metrics.track(t, running);
      },
    }, (e) => {
      this.metrics.onJobEvent(e);
      // A file a release hard-linked on the node was not sent: the release's `staged` line counts them.
      if (e.type === 'received') log[e.unchanged && deploy.release ? 'debug' : 'info']({ receiver: e.target, file: e.name, size: e.size, sha256: e.sha256 }, 'confirmed');
      else if (e.type === 'failed') log.warn({ receiver: e.target, file: e.name, code: e.code, reason: e.message }, 'transfer failed');
      else logDeployEvent(log, e);
      reply(e);
    });
    log.info({ ok, cancelled: jobSignal.aborted }, jobSignal.aborted ? 'job cancelled' : 'job finished');
  }

  private async releaseAdmin(req: ReleasesRequest | RollbackRequest, reply: (m: ControlMessage) => void, signal: AbortSignal): Promise<void> {
    const release = checkRelease(req.release);
    const links = this.resolveTargets(req.to);
    const log = this.log.child({ job: ++this.jobSeq });
    const ask = nodeRequestOptions(checkTransferOptions({ timeoutMs: req.timeoutMs }), log, AbortSignal.any([signal, this.closing.signal]));
    if (req.type === 'releases') return reply({ type: 'releases', release, nodes: await listReleases(links, release, ask) });
    const then = req.then === undefined ? undefined : checkThen(req.then);
    log.info({ release, to: req.id, targets: links.map((l) => l.name) }, 'rollback started');
    const ok = await rollbackAll(links, { release, ...(req.id !== undefined ? { to: checkReleaseId(req.id) } : {}), ...(then ? { then } : {}) }, ask, (e) => {
      logDeployEvent(log, e);
      reply(e);
    });
    log.info({ ok }, 'rollback finished');
  }
}

/** A release's steps and node actions in the agent's log: one line each, with node, name, status, duration. */
function logDeployEvent(log: Logger, e: JobEvent): void {
  if (e.type === 'release') {
    const fields = { receiver: e.target, release: e.release, id: e.id, phase: e.phase, code: e.code };
    if (e.phase === 'failed') log.warn({ ...fields, reason: e.message }, 'release step failed');
    else log.info(fields, `release ${e.phase}`);
  } else if (e.type === 'action') {
    const status = e.ok ? 'ok' : e.timedOut ? 'timeout' : e.signal ? `signal ${e.signal}` : `exit ${e.exitCode}`;
    (e.ok ? log.info : log.warn).call(log, { receiver: e.target, action: e.name, status, durationMs: e.durationMs }, `action ${e.name}: ${status}`);
  }
}
