/**
 * The receiver agent: an http server carrying Socket.IO (websocket only, msgpack frames) and /healthz.
 * It authenticates senders, keeps one IncomingTransfer per file name (so a re-offer after a reconnect
 * picks the running transfer up where it stopped), and expires old partials.
 */
import { stat, statfs } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import {
  createError, createParser, ErrorCode, FRAME_OVERHEAD, MAX_CHUNK_SIZE, resolveInside, tokensEqual, VERSION,
  type ChunkAck, type ChunkFrame, type ClientToServerEvents, type CommitFrame, type HandshakeAuth, type Logger,
  type OfferAccepted, type OfferFrame, type ReceivedFrame, type ReceiverStatus, type ServerToClientEvents,
} from '@relayer/common';
import { withDisplay } from './display.js';
import { IncomingTransfer } from './incoming-transfer.js';
import { ReceiverMetrics } from './metrics.js';
import { resolveReceiverOptions, type ReceiverOptions } from './options.js';
import { PartialStore, partialKey } from './partial-store.js';
import { Session, type ReceiverSocket } from './session.js';

export class Receiver {
  readonly options: ReceiverOptions;
  /** Fed by each Session with the outcome of every request; served at GET /metrics. */
  readonly metrics: ReceiverMetrics;
  private readonly log: Logger;
  private readonly store: PartialStore;
  private readonly http: HttpServer;
  private readonly io: Server<ClientToServerEvents, ServerToClientEvents>;
  /** By file name: at most one transfer per final path. */
  private readonly transfers = new Map<string, IncomingTransfer>();
  /** By lease, for the per-chunk lookup; entries whose transfer moved on to another lease are pruned. */
  private readonly leases = new Map<string, IncomingTransfer>();
  /** Leases that lost their file to an offer of a different version: their requests get SUPERSEDED. */
  private readonly superseded = new Set<string>();
  /** Offers and commits for one name run one after another. */
  private readonly offerLocks = new Map<string, Promise<unknown>>();
  private readonly sessions = new Set<Session>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private summaryTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();

  constructor(options: Partial<ReceiverOptions> & { token: string }) {
    this.options = resolveReceiverOptions(options);
    this.log = this.options.logger;
    this.store = new PartialStore(this.options.dir);
    this.metrics = new ReceiverMetrics({
      activeTransfers: () => this.activeTransfers, senders: () => this.sessions.size, freeBytes: () => this.freeBytes(),
    });
    this.http = createServer((req, res) => void this.onHttp(req, res));
    this.io = new Server(this.http, {
      transports: ['websocket'],
      perMessageDeflate: false,
      httpCompression: false,
      serveClient: false,
      parser: createParser((reason) => this.log.warn({ reason }, 'malformed packet: closing that connection')),
      maxHttpBufferSize: MAX_CHUNK_SIZE + FRAME_OVERHEAD,
      pingInterval: this.options.pingIntervalMs,
      pingTimeout: this.options.pingTimeoutMs,
    });
    this.io.use((socket, next) => {
      const auth = socket.handshake.auth as Partial<HandshakeAuth>;
      if (tokensEqual(this.options.token, auth?.token)) return next();
      this.log.warn({ peer: socket.handshake.address, tokenGiven: typeof auth?.token === 'string' }, 'refused connection: bad or missing token');
      next(Object.assign(new Error('authentication failed: bad or missing token'), { data: { code: ErrorCode.AUTH } }));
    });
    this.io.on('connection', (socket: ReceiverSocket) => {
      this.sessions.add(new Session(this, socket, this.log));
    });
  }

  async start(): Promise<AddressInfo> {
    const { dir, host, port, partialTtlMs } = this.options;
    await this.store.init();
    await this.sweep();
    this.sweepTimer = setInterval(() => void this.sweep(), Math.min(Math.max(partialTtlMs / 4, 1000), 3_600_000));
    this.sweepTimer.unref();
    if (this.options.summaryEveryMs > 0) {
      this.summaryTimer = setInterval(() => void this.logSummary(), this.options.summaryEveryMs);
      this.summaryTimer.unref();
    }
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    const addr = this.address();
    this.log.info({ host: addr.address, port: addr.port, dir, version: VERSION, node: this.options.node }, 'receiver listening');
    return addr;
  }

  address(): AddressInfo {
    return this.http.address() as AddressInfo;
  }

  /** ws://host:port for a client on this machine. */
  get url(): string {
    const { address, port } = this.address();
    const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address.includes(':') ? `[${address}]` : address;
    return `http://${host}:${port}`;
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    clearInterval(this.summaryTimer);
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    await Promise.all([...this.transfers.values()].map((t) => t.abandon()));
    this.transfers.clear();
    this.leases.clear();
    this.log.info('receiver closed');
  }

  get activeTransfers(): number {
    let n = 0;
    for (const t of this.transfers.values()) if (t.owner !== undefined) n++;
    return n;
  }

  private async logSummary(): Promise<void> {
    const senders = [...this.sessions].map((s) => s.describe());
    const free = await this.freeBytes().catch(() => null);
    this.log.info({ senders, activeTransfers: this.activeTransfers, freeBytes: free },
      `status: ${senders.length} sender(s) connected, ${this.activeTransfers} transfer(s) active`);
  }

  async freeBytes(): Promise<number> {
    const s = await statfs(this.options.dir);
    return s.bavail * s.bsize;
  }

  async status(seq: number): Promise<ReceiverStatus> {
    return {
      seq,
      node: this.options.node,
      version: VERSION,
      freeBytes: await this.freeBytes(),
      activeTransfers: this.activeTransfers,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  async offer(session: Session, frame: OfferFrame): Promise<OfferAccepted> {
    const finalPath = await resolveInside(this.options.dir, frame.name);
    if (frame.size > this.options.maxFileSize) {
      throw createError(ErrorCode.TOO_LARGE, `${frame.name} is ${frame.size} bytes, over this receiver's limit of ${this.options.maxFileSize}`);
    }
    return this.withOfferLock(frame.name, async () => {
      const identity = { size: frame.size, mtimeMs: frame.mtimeMs };
      let transfer = this.transfers.get(frame.name);
      const sameSource = transfer?.identity.size === identity.size && transfer?.identity.mtimeMs === identity.mtimeMs;
      if (transfer && (!transfer.resumable || !sameSource || frame.fresh)) {
        // A different version of the file, a sender whose bytes differ, or a finished transfer: start over,
        // never splice two versions. Last offer wins; a sender still on the old version is told so.
        if (transfer.resumable) {
          transfer.log.info({ fresh: Boolean(frame.fresh) }, 'superseded by a new offer for this name');
          if (transfer.lease && !sameSource) this.markSuperseded(transfer.lease);
          await transfer.refuse();
        }
        this.transfers.delete(frame.name);
        transfer = undefined;
      }
      if (!transfer && frame.fresh) await this.store.discard(partialKey(frame.name));
      const held = transfer ? transfer.written : await this.store.peek(frame.name, identity);
      await this.checkSpace(frame, frame.size - held, transfer);
      if (!transfer) {
        const partial = await this.store.open(frame.name, identity);
        transfer = new IncomingTransfer({ name: frame.name, root: this.options.dir, identity, partial, store: this.store, log: session.log });
        this.transfers.set(frame.name, transfer);
      } else if (transfer.owner !== undefined && transfer.owner !== session.id) {
        transfer.log.info('taken over by a new offer for the same file');
      }
      const offset = await transfer.attach(session.id, session.log);
      this.leases.set(transfer.lease, transfer);
      const existing = await statSize(finalPath);
      transfer.log.info({ size: frame.size, offset }, offset > 0 ? 'offer accepted: resuming' : 'offer accepted');
      return {
        transfer: transfer.lease,
        offset,
        ...(existing === frame.size ? { existingSize: existing } : {}),
        ...(offset > 0 ? { prefixSha256: transfer.prefixSha256() } : {}),
      };
    });
  }

  private async checkSpace(frame: OfferFrame, needed: number, self: IncomingTransfer | undefined): Promise<void> {
    let reserved = 0;
    for (const t of this.transfers.values()) if (t !== self && t.owner !== undefined) reserved += t.size - t.written;
    const free = await this.freeBytes();
    if (free - reserved - needed < this.options.minFree) {
      throw createError(ErrorCode.DISK_FULL, `not enough space for ${frame.name}: needs ${needed} bytes, ${free - reserved} free, must keep ${this.options.minFree}`);
    }
  }

  private withOfferLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.offerLocks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.offerLocks.set(name, tail);
    void tail.then(() => {
      if (this.offerLocks.get(name) === tail) this.offerLocks.delete(name);
    });
    return run;
  }

  private markSuperseded(lease: string): void {
    this.superseded.add(lease);
    // Only recent leases matter (their senders are still retrying); keep the set bounded.
    if (this.superseded.size > 1000) this.superseded.delete(this.superseded.values().next().value!);
  }

  private byLease(lease: string): IncomingTransfer | undefined {
    const t = this.leases.get(lease);
    if (t?.lease === lease) return t;
    this.leases.delete(lease);
    return undefined;
  }

  private owned(session: Session, lease: string): IncomingTransfer {
    const t = this.byLease(lease);
    if (t && t.owner === session.id) return t;
    if (this.superseded.has(lease)) {
      throw createError(ErrorCode.SUPERSEDED, 'another sender is now sending a different version of this file (last offer wins)');
    }
    throw createError(ErrorCode.UNKNOWN_TRANSFER, `transfer ${lease} is not active on this connection: offer again`);
  }

  async chunk(session: Session, frame: ChunkFrame): Promise<ChunkAck> {
    return { offset: await this.owned(session, frame.transfer).write(frame) };
  }

  async commit(session: Session, frame: CommitFrame): Promise<ReceivedFrame> {
    const { name } = this.owned(session, frame.transfer);
    // Commits take the same per-name lock as offers: an offer of another version discards the partial and
    // opens a new one, which must never happen while a commit is verifying and renaming it into place.
    return this.withOfferLock(name, async () => {
      const transfer = this.owned(session, frame.transfer);
      try {
        const { node, dir, displayDir } = this.options;
        const received = withDisplay(await transfer.commit(frame.sha256), { node, dir, displayDir });
        transfer.log.info({ size: received.size, sha256: received.sha256, path: received.path, unchanged: received.unchanged }, 'file received');
        return received;
      } finally {
        if (!transfer.resumable) {
          this.leases.delete(frame.transfer);
          if (this.transfers.get(transfer.name) === transfer) this.transfers.delete(transfer.name);
        }
      }
    });
  }

  async abort(session: Session, lease: string): Promise<void> {
    const transfer = this.byLease(lease);
    if (!transfer || transfer.owner !== session.id) return;
    transfer.log.info({ written: transfer.written }, 'aborted by sender: partial kept');
    await transfer.abandon();
  }

  async detach(session: Session): Promise<void> {
    this.sessions.delete(session);
    for (const t of this.transfers.values()) {
      if (t.owner === session.id) {
        t.log.info({ written: t.written, size: t.size }, 'connection lost: partial kept for resume');
        await t.abandon();
      }
    }
  }

  private async sweep(): Promise<void> {
    const { partialTtlMs } = this.options;
    const now = Date.now();
    for (const [name, t] of this.transfers) {
      if (t.owner === undefined && now - t.lastActivity > partialTtlMs) this.transfers.delete(name);
    }
    for (const [lease, t] of this.leases) if (t.lease !== lease || this.transfers.get(t.name) !== t) this.leases.delete(lease);
    const active = new Set([...this.transfers.values()].map((t) => t.key));
    try {
      const removed = await this.store.sweep(partialTtlMs, active, now);
      if (removed.length) this.log.info({ count: removed.length }, 'expired partials removed');
    } catch (err) {
      this.log.warn({ err }, 'partial sweep failed');
    }
  }

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET' && (req.url === '/healthz' || req.url?.startsWith('/healthz?'))) {
      let free: number | null = null;
      try {
        free = await this.freeBytes();
      } catch { /* reported as null: the folder is gone */ }
      const body = {
        status: free === null ? 'degraded' : 'ok',
        version: VERSION,
        node: this.options.node,
        uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
        freeBytes: free,
        activeTransfers: this.activeTransfers,
        senders: this.sessions.size,
      };
      res.writeHead(free === null ? 503 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) return this.metrics.serve(res);
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
  }
}

async function statSize(p: string): Promise<number | undefined> {
  const st = await stat(p).catch(() => undefined);
  return st?.isFile() ? st.size : undefined;
}
