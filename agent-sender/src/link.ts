/**
 * One persistent connection to one receiver: connects, reconnects with backoff (forever, unless closed),
 * heartbeats, measures RTT and names its state: disconnected → connected ⇄ stale → disconnected … → closed.
 * A link that is down and retrying is "disconnected"; its lastError says why the last attempt failed.
 * Every request rides on it and fails fast with DISCONNECTED/TIMEOUT rather than queueing while down.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { io, type Socket } from 'socket.io-client';
import {
  createError, definedOnly, ErrorCode, fromWireError, msgpackParser, RelayError, VERSION,
  type ClientToServerEvents, type HandshakeAuth, type Logger, type ReceivedFrame, type ReceiverStatus,
  type Reply, type ServerToClientEvents,
} from '@relayer/common';

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export const LinkState = {
  CONNECTED: 'connected',
  STALE: 'stale',
  DISCONNECTED: 'disconnected',
  CLOSED: 'closed',
} as const;
export type LinkState = (typeof LinkState)[keyof typeof LinkState];

export interface LinkOptions {
  /** Receiver name (as configured on the agent, or the URL for direct sends). */
  name: string;
  url: string;
  token: string;
  logger: Logger;
  /** Heartbeat interval; 0 disables heartbeats (direct sends). */
  heartbeatMs: number;
  /** Missed beats before the link is stale. Default 3. */
  staleAfter?: number;
  /** Reconnect backoff bounds. Default 250ms … 5s. */
  reconnectDelayMs?: number;
  reconnectDelayMaxMs?: number;
  /** Keep retrying after an AUTH refusal (an agent waits for a token fix); direct sends give up. */
  retryAuth?: boolean;
  /** Sender identity shown in the receiver's logs. */
  sender?: string;
}

export interface LinkSnapshot {
  name: string;
  url: string;
  state: LinkState;
  rttMs: number | null;
  lastHeartbeatAgoMs: number | null;
  node: string | null;
  freeBytes: number | null;
  activeTransfers: number | null;
  version: string | null;
  lastError: { code: string; message: string } | null;
}

export interface LinkEvents {
  state: [state: LinkState, previous: LinkState, detail: { reason?: string; rttMs?: number }];
  received: [frame: ReceivedFrame];
  /** The receiver refused the token (the link stays disconnected; an agent's link retries later). */
  refused: [error: RelayError];
}

export class Link extends EventEmitter<LinkEvents> {
  readonly name: string;
  readonly url: string;
  state: LinkState = LinkState.DISCONNECTED;
  rttMs: number | null = null;
  lastBeatAt: number | null = null;
  status: ReceiverStatus | null = null;
  lastError: RelayError | null = null;
  private readonly socket: ClientSocket;
  private readonly log: Logger;
  private readonly opts: Required<Omit<LinkOptions, 'logger' | 'token'>>;
  private beatTimer: NodeJS.Timeout | undefined;
  private authRetryTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private answeredSeq = 0;
  private everConnected = false;
  /** Why the link was closed, when it was closed for a reason a job should report (e.g. its receiver left DNS). */
  private closedError: RelayError | undefined;

  constructor(options: LinkOptions) {
    super();
    this.opts = {
      staleAfter: 3, reconnectDelayMs: 250, reconnectDelayMaxMs: 5000, retryAuth: false,
      sender: `${os.hostname()}/${process.pid}`, ...definedOnly(options),
    } as Required<Omit<LinkOptions, 'logger' | 'token'>>;
    this.name = options.name;
    this.url = options.url;
    this.log = options.logger.child({ receiver: options.name });
    const auth: HandshakeAuth = { token: options.token, sender: this.opts.sender, version: VERSION };
    this.socket = io(options.url, {
      transports: ['websocket'],
      parser: msgpackParser,
      auth,
      autoConnect: false,
      reconnection: true,
      reconnectionAttempts: Infinity,
      reconnectionDelay: this.opts.reconnectDelayMs,
      reconnectionDelayMax: this.opts.reconnectDelayMaxMs,
      randomizationFactor: 0.3,
      timeout: 10_000,
    } as Parameters<typeof io>[1]);
    this.socket.on('connect', () => this.onConnect());
    this.socket.on('disconnect', (reason) => this.onDisconnect(reason));
    this.socket.on('connect_error', (err) => this.onConnectError(err as Error & { data?: { code?: string } }));
    this.socket.on('received', (frame) => this.emit('received', frame));
  }

  start(): this {
    this.socket.connect();
    return this;
  }

  /** Closes for good; jobs waiting on or using this link fail with `reason` (default CANCELLED). */
  close(reason?: RelayError): void {
    this.closedError ??= reason;
    clearInterval(this.beatTimer);
    clearTimeout(this.authRetryTimer);
    this.setState(LinkState.CLOSED, { reason: reason?.message ?? 'closed' });
    this.socket.disconnect();
  }

  get connected(): boolean {
    return this.state === LinkState.CONNECTED || this.state === LinkState.STALE;
  }

  /** Drops and re-establishes the connection (after an ack timeout the socket may be half dead). */
  recycle(reason: string): void {
    if (this.state === LinkState.CLOSED) return;
    this.log.warn({ reason }, 'recycling connection');
    this.socket.disconnect();
    this.onDisconnect(reason);
    this.socket.connect();
  }

  /**
   * Resolves when connected; rejects with AUTH at once when the receiver refused the token (an agent's
   * link keeps retrying in the background, but a job does not wait out its timeout on a wrong token),
   * UNREACHABLE after timeoutMs, or CANCELLED on abort.
   */
  ready(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.state === LinkState.CLOSED) return Promise.reject(this.closedError ?? createError(ErrorCode.CANCELLED, `link to ${this.name} closed`));
    if (this.lastError?.code === ErrorCode.AUTH) return Promise.reject(this.lastError);
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.off('state', onState);
        this.off('refused', done);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onState = (state: LinkState): void => {
        if (state === LinkState.CONNECTED) done();
        else if (state === LinkState.CLOSED) done(this.closedError ?? createError(ErrorCode.CANCELLED, `link to ${this.name} closed`));
      };
      const onAbort = (): void => done(createError(ErrorCode.CANCELLED, 'cancelled'));
      const timer = setTimeout(() => {
        const why = this.lastError ? `: ${this.lastError.message}` : '';
        done(createError(ErrorCode.UNREACHABLE, `receiver ${this.name} (${this.url}) not reachable within ${Math.round(timeoutMs / 1000)}s${why}`));
      }, timeoutMs);
      this.on('state', onState);
      this.on('refused', done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Sends a request and waits for its reply; a coded error reply becomes a thrown RelayError. */
  async request<E extends 'offer' | 'chunk' | 'commit' | 'heartbeat'>(
    event: E,
    frame: Parameters<ClientToServerEvents[E]>[0],
    timeoutMs: number,
  ): Promise<Extract<Parameters<Parameters<ClientToServerEvents[E]>[1]>[0], { ok: true }>> {
    if (!this.socket.connected) throw createError(ErrorCode.DISCONNECTED, `not connected to ${this.name}`);
    let reply: Reply<object>;
    try {
      reply = await (this.socket.timeout(timeoutMs) as unknown as Socket).emitWithAck(event, frame);
    } catch (err) {
      if (!this.socket.connected) throw createError(ErrorCode.DISCONNECTED, `connection to ${this.name} lost`);
      throw createError(ErrorCode.TIMEOUT, `no answer from ${this.name} to ${event} within ${timeoutMs}ms`, err);
    }
    if (!reply || typeof reply !== 'object' || typeof reply.ok !== 'boolean') {
      throw createError(ErrorCode.PROTOCOL, `malformed ${event} reply from ${this.name}`);
    }
    if (!reply.ok) throw fromWireError(reply.error);
    return reply as never;
  }

  /** Best effort, no reply expected. */
  notify(event: 'abort', frame: { transfer: string }): void {
    if (this.socket.connected) this.socket.emit(event, frame);
  }

  snapshot(): LinkSnapshot {
    return {
      name: this.name,
      url: this.url,
      state: this.state,
      rttMs: this.rttMs,
      lastHeartbeatAgoMs: this.lastBeatAt === null ? null : Date.now() - this.lastBeatAt,
      node: this.status?.node ?? null,
      freeBytes: this.status?.freeBytes ?? null,
      activeTransfers: this.status?.activeTransfers ?? null,
      version: this.status?.version ?? null,
      lastError: this.lastError ? { code: this.lastError.code, message: this.lastError.message } : null,
    };
  }

  private setState(state: LinkState, detail: { reason?: string; rttMs?: number } = {}): void {
    const previous = this.state;
    if (previous === state || previous === LinkState.CLOSED) return;
    this.state = state;
    const level = state === LinkState.CONNECTED ? 'info' : state === LinkState.CLOSED ? 'debug' : 'warn';
    const label = state !== LinkState.CONNECTED ? state
      : previous === LinkState.STALE ? 'heartbeats resumed' : this.everConnected ? 'reconnected' : 'connected';
    this.log[level]({ state, previous, url: this.url, rttMs: this.rttMs ?? undefined, ...detail }, `receiver ${label}`);
    this.emit('state', state, previous, detail);
  }

  private onConnect(): void {
    this.lastError = null;
    this.answeredSeq = this.seq;
    this.setState(LinkState.CONNECTED);
    this.everConnected = true;
    if (this.opts.heartbeatMs > 0) {
      clearInterval(this.beatTimer);
      this.beatTimer = setInterval(() => this.beat(), this.opts.heartbeatMs);
      this.beat();
    }
  }

  private onDisconnect(reason: string): void {
    clearInterval(this.beatTimer);
    // Never replay stale requests (chunks of a dead attempt) on the next connection.
    this.socket.sendBuffer.length = 0;
    this.setState(LinkState.DISCONNECTED, { reason });
  }

  private onConnectError(err: Error & { data?: { code?: string } }): void {
    if (err.data?.code === ErrorCode.AUTH) {
      this.lastError = createError(ErrorCode.AUTH, `receiver ${this.name} refused the token`);
      this.log.warn({ url: this.url }, 'receiver refused the token');
      if (this.opts.retryAuth) {
        this.authRetryTimer = setTimeout(() => this.socket.connect(), this.opts.reconnectDelayMaxMs * 6);
        this.authRetryTimer.unref();
      }
      this.emit('refused', this.lastError);
      return;
    }
    this.lastError = createError(ErrorCode.UNREACHABLE, `cannot connect to ${this.url}: ${err.message}`);
    this.log.debug({ reason: err.message }, 'connect attempt failed');
  }

  private beat(): void {
    if (!this.socket.connected) return;
    const seq = ++this.seq;
    const sentAt = Date.now();
    this.request('heartbeat', { seq, sentAt, intervalMs: this.opts.heartbeatMs }, this.opts.heartbeatMs * this.opts.staleAfter).then(
      (status) => {
        if (status.seq !== seq) return;
        this.answeredSeq = Math.max(this.answeredSeq, seq);
        this.rttMs = Date.now() - sentAt;
        this.lastBeatAt = Date.now();
        this.status = status;
        this.log.debug({ seq, rttMs: this.rttMs, freeBytes: status.freeBytes, active: status.activeTransfers }, 'heartbeat');
        if (this.state === LinkState.STALE) this.setState(LinkState.CONNECTED, { rttMs: this.rttMs });
      },
      () => undefined,
    );
    // Stale means: the last `staleAfter` beats went unanswered (counted at send time, not by reply timeouts).
    const unanswered = seq - 1 - this.answeredSeq;
    if (unanswered >= this.opts.staleAfter && this.state === LinkState.CONNECTED) {
      this.setState(LinkState.STALE, { reason: `${unanswered} heartbeats unanswered` });
    }
  }
}
