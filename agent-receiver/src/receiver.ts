/**
 * The receiver agent: an http server carrying Socket.IO (websocket only, msgpack frames), /healthz and /metrics.
 * It authenticates senders and checks their protocol version, gives each connection a Session, and runs
 * its lifecycle: RUNNING → CLOSING → CLOSED. Who sends which file is the TransferRegistry's business.
 */
import { statfs } from 'node:fs/promises';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ErrorCode, PROTOCOL_VERSION, VERSION, type HandshakeAuth, type Logger, type ReceiverStatus,
} from '@relayer/common';
import { displayOf, withDisplay } from './display.js';
import { ReceiverMetrics } from './metrics.js';
import { serveHealthAndMetrics, type Health } from '@relayer/common/metrics-text';
import { Admission, type AdmissionOptions } from './session/admission.js';
import { resolveReceiverOptions, type ReceiverOptions } from './options.js';
import { FileHasher } from '@relayer/common/file-hasher';
import { PartialStore } from './store/partial-store.js';
import { Session } from './session/session.js';
import { createSocketServer, SenderSocket, type SocketServer } from './session/sender-socket.js';
import { createListener } from './session/tls-server.js';
import { TransferRegistry } from './transfer/transfer-registry.js';
import { ActionRunner } from './actions/action-runner.js';
import { Releases } from './release/releases.js';

export const ReceiverState = {
  NEW: 'new',
  RUNNING: 'running',
  CLOSING: 'closing',
  CLOSED: 'closed',
} as const;
export type ReceiverState = (typeof ReceiverState)[keyof typeof ReceiverState];

export interface ReceiverStats {
  senders: number;
  activeTransfers: number;
  reservedBytes: number;
  /** Most chunk bytes one connection held at once since start (bounded by maxBufferedBytesPerConnection + one chunk). */
  peakBufferedBytes: number;
}

export class Receiver {
  readonly options: ReceiverOptions;
  /** Fed by each Session with the outcome of every request and by the registry with each transfer's end; served at GET /metrics. */
  readonly metrics: ReceiverMetrics;
  state: ReceiverState = ReceiverState.NEW;
  private readonly log: Logger;
  private readonly store: PartialStore;
  /** The partials' running sha256 digests, on worker threads; ended by close(). */
  private readonly hasher: FileHasher;
  private readonly registry: TransferRegistry;
  /** Releases (staging, switch, rollback, --keep) and the node actions run after them. */
  private readonly releases: Releases;
  private readonly actions: ActionRunner;
  private readonly http: HttpServer;
  private readonly io: SocketServer;
  /** Connection caps, handshake deadlines and the token check (with backoff and blocking). */
  private readonly admission: Admission;
  private readonly sessions = new Set<Session>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private summaryTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private peakBufferedBytes = 0;

  constructor(options: Omit<Partial<ReceiverOptions>, 'admission'> & { token: string | readonly string[]; admission?: Partial<AdmissionOptions> }) {
    this.options = resolveReceiverOptions(options);
    this.log = this.options.logger;
    this.hasher = new FileHasher({ threads: this.options.hashThreads });
    this.store = new PartialStore(this.options.dir, this.hasher, this.log);
    this.metrics = new ReceiverMetrics({
      activeTransfers: () => this.activeTransfers, senders: () => this.sessions.size, freeBytes: () => this.freeBytes(),
    });
    this.actions = new ActionRunner({ dir: this.options.actionDir, root: this.options.dir, log: this.log, onRun: (r) => this.metrics.actionRan(r) });
    this.releases = new Releases({ root: this.options.dir, node: this.options.node, log: this.log, actions: this.actions, display: (p) => displayOf(p, this.options) });
    this.registry = new TransferRegistry({
      root: this.options.dir, store: this.store, limits: this.options, log: this.log, freeBytes: () => this.freeBytes(),
      onEnded: (end) => this.metrics.ended(end),
      guardName: (name) => this.releases.guardName(name),
    });
    this.admission = new Admission([this.options.token].flat(), this.options.admission, this.log);
    this.http = this.createServer();
    this.io = this.attachSocketIo(this.http);
  }

  /** The http server Socket.IO and /healthz ride on (one place to swap in https). */
  private createServer(): HttpServer {
    return createListener(this.options.tls, (req, res) => void this.onHttp(req, res), this.options.admission.handshakeTimeoutMs, this.log);
  }

  private attachSocketIo(http: HttpServer): SocketServer {
    const io = createSocketServer(http, {
      pingIntervalMs: this.options.pingIntervalMs,
      pingTimeoutMs: this.options.pingTimeoutMs,
      onMalformed: (reason) => this.log.warn({ reason }, 'malformed packet: closing that connection'),
    });
    // The token is checked first, by admission; then the protocol version and our state.
    this.admission.attach(http, io, this.options.tls !== undefined);
    io.use((socket, next) => {
      const auth = socket.handshake.auth as Partial<HandshakeAuth>;
      const theirs = typeof auth.protocol === 'number' ? auth.protocol : 1;
      if (theirs !== PROTOCOL_VERSION) {
        const message = `protocol mismatch: the sender speaks protocol v${theirs}, this receiver v${PROTOCOL_VERSION}`;
        this.log.warn({ peer: socket.handshake.address, protocol: theirs }, 'refused connection: protocol mismatch');
        return next(Object.assign(new Error(message), { data: { code: ErrorCode.PROTOCOL, message, protocol: PROTOCOL_VERSION } }));
      }
      if (this.state !== ReceiverState.RUNNING) return next(new Error('receiver is shutting down'));
      next();
    });
    io.on('connection', (io) => {
      const socket = new SenderSocket(io);
      if (this.state !== ReceiverState.RUNNING) return void socket.disconnect();
      this.sessions.add(new Session({
        registry: this.registry,
        releases: this.releases,
        status: (seq) => this.status(seq),
        maxBufferedBytes: this.options.maxBufferedBytesPerConnection,
        onBuffered: (bytes) => (this.peakBufferedBytes = Math.max(this.peakBufferedBytes, bytes)),
        onClosed: (s) => this.sessions.delete(s),
        observe: (request, frame, outcome) => this.metrics.observe(request, frame, outcome),
        describe: (received) => {
          this.releases.confirmed(received);
          return withDisplay(received, this.options);
        },
      }, socket, this.log));
    });
    return io;
  }

  async start(): Promise<AddressInfo> {
    const { dir, host, port, partialTtlMs, transferIdleMs } = this.options;
    await this.store.init();
    this.sweepTimer = setInterval(() => void this.sweep(), Math.min(Math.max(partialTtlMs / 4, 1000), 3_600_000));
    this.sweepTimer.unref();
    this.idleTimer = setInterval(() => void this.registry.releaseIdle(), Math.min(Math.max(transferIdleMs / 4, 50), 60_000));
    this.idleTimer.unref();
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
    this.state = ReceiverState.RUNNING;
    // Swept after listening: a restart over many partials is healthy at once, and the sweep is safe
    // beside live offers (the registry tells the store which keys are in use).
    void this.sweep();
    const addr = this.address();
    this.log.info({ host: addr.address, port: addr.port, dir, version: VERSION, protocol: PROTOCOL_VERSION, node: this.options.node, tls: this.options.tls !== undefined }, 'receiver listening');
    return addr;
  }

  address(): AddressInfo {
    return this.http.address() as AddressInfo;
  }

  /** http(s)://host:port for a client on this machine. */
  get url(): string {
    const { address, port } = this.address();
    const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address.includes(':') ? `[${address}]` : address;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${port}`;
  }

  /** Refuses new offers at once, closes every connection, releases every transfer (partials kept). */
  async close(): Promise<void> {
    if (this.state === ReceiverState.CLOSING || this.state === ReceiverState.CLOSED) return;
    this.state = ReceiverState.CLOSING;
    clearInterval(this.sweepTimer);
    clearInterval(this.idleTimer);
    clearInterval(this.summaryTimer);
    this.admission.close();
    const closed = this.registry.close();
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    await closed;
    await this.sweeping;
    await this.actions.close();
    await this.hasher.close();
    this.state = ReceiverState.CLOSED;
    this.log.info('receiver closed');
  }

  get activeTransfers(): number {
    return this.registry.active;
  }

  stats(): ReceiverStats {
    return {
      senders: this.sessions.size,
      activeTransfers: this.registry.active,
      reservedBytes: this.registry.reserved,
      peakBufferedBytes: this.peakBufferedBytes,
    };
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
      protocol: PROTOCOL_VERSION,
      freeBytes: await this.freeBytes(),
      activeTransfers: this.activeTransfers,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  /** Resolves once the sweep in progress, if any (one starts right after listening), has finished. */
  async swept(): Promise<void> {
    await this.sweeping;
  }

  private sweep(): Promise<void> {
    // One sweep at a time: a slow one (many partials, a slow disk) is not joined by the next tick's.
    this.sweeping ??= (async () => {
      try {
        const removed = await this.registry.sweep(this.options.partialTtlMs);
        if (removed.length) this.log.info({ count: removed.length }, 'expired partials removed');
      } catch (err) {
        this.log.warn({ err }, 'partial sweep failed');
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return serveHealthAndMetrics(req, res, () => this.health(), this.metrics.registry);
  }

  private async health(): Promise<Health> {
    let free: number | null = null;
    try {
      free = await this.freeBytes();
    } catch { /* reported as null: the folder is gone */ }
    // A receiver whose partial folder cannot be made again takes no file: say so, not "ok".
    const partials = free !== null && (await this.store.usable() || await this.store.init().then(() => true, () => false));
    const ok = free !== null && partials && this.state === ReceiverState.RUNNING;
    return {
      ok,
      body: {
        status: ok ? 'ok' : 'degraded',
        version: VERSION,
        protocol: PROTOCOL_VERSION,
        node: this.options.node,
        uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
        freeBytes: free,
        partialsWritable: partials,
        activeTransfers: this.activeTransfers,
        senders: this.sessions.size,
      },
    };
  }
}
