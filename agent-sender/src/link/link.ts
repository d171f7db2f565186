/**
 * One persistent connection to one receiver: connects, reconnects with backoff (forever, unless closed),
 * heartbeats, measures RTT and names its state: disconnected → connected ⇄ stale → disconnected … → closed.
 * A link that is down and retrying is "disconnected"; its lastError says why the last attempt failed.
 * Every request rides on it and fails fast with DISCONNECTED/TIMEOUT rather than queueing while down.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import {
  createError, definedOnly, ErrorCode, fromWireError, isReceivedFrames, isReceiverStatus, PROTOCOL_VERSION, RelayError,
  Requests, toRelayError, VERSION,
  type HandshakeAuth, type Logger, type ReceivedFrame, type ReceiverStatus,
  type Reply, type ReplyOf, type RequestName, type RequestOf,
} from '@relayer/common';
import { connectFailure } from './connect-failure.js';
import { Heartbeat } from './heartbeat.js';
import { ReceiverSocket } from './receiver-socket.js';

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
  /** PEM CA certificate(s) to trust for https:// receivers (besides the system's). Host names are always verified. */
  ca?: string | Buffer;
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
  /** The receiver refused the token or speaks another protocol version (an agent's link retries later). */
  refused: [error: RelayError];
}

export class Link extends EventEmitter<LinkEvents> {
  readonly name: string;
  /** Changes only by retarget() (a discovered receiver that came back at another address). */
  url: string;
  state: LinkState = LinkState.DISCONNECTED;
  rttMs: number | null = null;
  lastBeatAt: number | null = null;
  status: ReceiverStatus | null = null;
  lastError: RelayError | null = null;
  private socket: ReceiverSocket;
  /** Requests waiting for their "received", by lease (see requestConfirming). */
  private readonly confirmations = new Map<string, ReceivedFrame | undefined>();
  private readonly auth: HandshakeAuth;
  private readonly ca: LinkOptions['ca'];
  /** Set while detached: the receiver's address is gone, nothing to reconnect to until retarget(). */
  private detachedReason: string | undefined;
  private readonly log: Logger;
  private readonly opts: Required<Omit<LinkOptions, 'logger' | 'token' | 'ca'>>;
  private readonly heartbeat: Heartbeat;
  private authRetryTimer: NodeJS.Timeout | undefined;
  private everConnected = false;
  /** Why the link was closed, when it was closed for a reason a job should report (e.g. its receiver left DNS). */
  private closedError: RelayError | undefined;

  constructor(options: LinkOptions) {
    super();
    this.opts = {
      staleAfter: 3, reconnectDelayMs: 250, reconnectDelayMaxMs: 5000, retryAuth: false,
      sender: `${os.hostname()}/${process.pid}`, ...definedOnly(options),
    } as Required<Omit<LinkOptions, 'logger' | 'token' | 'ca'>>;
    this.name = options.name;
    this.url = options.url;
    this.log = options.logger.child({ receiver: options.name });
    this.auth = { token: options.token, protocol: PROTOCOL_VERSION, sender: this.opts.sender, version: VERSION };
    this.ca = options.ca;
    this.heartbeat = new Heartbeat({
      everyMs: this.opts.heartbeatMs, staleAfter: this.opts.staleAfter, alive: () => this.socket.connected,
      send: (seq, sentAt) => this.request('heartbeat', { seq, sentAt, intervalMs: this.opts.heartbeatMs }, this.opts.heartbeatMs * this.opts.staleAfter),
      onAnswer: (rttMs, status) => {
        this.rttMs = rttMs;
        this.lastBeatAt = Date.now();
        this.status = status;
        this.log.debug({ seq: status.seq, rttMs, freeBytes: status.freeBytes, active: status.activeTransfers }, 'heartbeat');
        if (this.state === LinkState.STALE) this.setState(LinkState.CONNECTED, { rttMs });
      },
      onUnanswered: (beats) => {
        if (this.state === LinkState.CONNECTED) this.setState(LinkState.STALE, { reason: `${beats} heartbeats unanswered` });
      },
    });
    this.socket = this.newSocket(options.url);
  }

  /** A socket to `url` wired to this link; its events are ignored once it is no longer this.socket. */
  private newSocket(url: string): ReceiverSocket {
    const mine = (): boolean => socket === this.socket;
    const { reconnectDelayMs, reconnectDelayMaxMs } = this.opts;
    const socket: ReceiverSocket = new ReceiverSocket(url, { auth: this.auth, ca: this.ca, reconnectDelayMs, reconnectDelayMaxMs }, {
      connect: () => { if (mine()) void this.onConnect(); },
      disconnect: (reason) => { if (mine()) this.onDisconnect(reason); },
      connectError: (err) => { if (mine()) this.onConnectError(err); },
      received: (frame) => { if (mine()) this.onReceived(frame); },
    });
    return socket;
  }

  /**
   * The receiver's address is gone (a discovered receiver left DNS): stop reconnecting to it, but keep the
   * link, its name and the transfers waiting on it, shown as disconnected with `reason`, until retarget()
   * or close().
   */
  detach(reason: RelayError): void {
    if (this.state === LinkState.CLOSED) return;
    this.detachedReason = reason.message;
    this.lastError = reason;
    clearTimeout(this.authRetryTimer);
    this.socket.disconnect();
    this.onDisconnect(reason.message);
  }

  /**
   * Points the link at a new address (the same receiver, restarted elsewhere): a new socket inside the same
   * link, so its name, state and the transfers waiting on it carry over; they resume as after any reconnect.
   */
  retarget(url: string): void {
    if (this.state === LinkState.CLOSED) return;
    this.log.info({ from: this.url, to: url }, 'receiver moved: connecting to its new address');
    const old = this.socket;
    this.detachedReason = undefined;
    this.url = url;
    this.socket = this.newSocket(url);
    old.disconnect();
    this.onDisconnect(`moved to ${url}`);
    this.socket.connect();
  }

  get detached(): boolean {
    return this.detachedReason !== undefined;
  }

  start(): this {
    this.socket.connect();
    return this;
  }

  /** Closes for good; jobs waiting on or using this link fail with `reason` (default CANCELLED). */
  close(reason?: RelayError): void {
    this.closedError ??= reason;
    this.heartbeat.stop();
    clearTimeout(this.authRetryTimer);
    this.setState(LinkState.CLOSED, { reason: reason?.message ?? 'closed' });
    this.socket.disconnect();
  }

  get connected(): boolean {
    return this.state === LinkState.CONNECTED || this.state === LinkState.STALE;
  }

  /** Drops and re-establishes the connection (after an ack timeout the socket may be half dead). */
  recycle(reason: string): void {
    if (this.state === LinkState.CLOSED || this.detached) return;
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
    const code = this.lastError?.code;
    if (code === ErrorCode.AUTH || code === ErrorCode.PROTOCOL || code === ErrorCode.TLS) return Promise.reject(this.lastError);
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
        done(createError(ErrorCode.UNREACHABLE, `receiver ${this.name === this.url ? this.name : `${this.name} (${this.url})`} not reachable within ${Math.round(timeoutMs / 1000)}s${why}`));
      }, timeoutMs);
      this.on('state', onState);
      this.on('refused', done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Sends a request and waits for its reply, validated like the receiver validates requests: a coded error
   * reply becomes a thrown RelayError (an unknown code becomes PROTOCOL), a malformed reply PROTOCOL.
   */
  async request<E extends RequestName>(event: E, frame: RequestOf<E>, timeoutMs: number): Promise<ReplyOf<E>> {
    if (!this.socket.connected) throw createError(ErrorCode.DISCONNECTED, `not connected to ${this.name}`);
    const reply = await this.ask(event, frame, timeoutMs);
    if (!reply || typeof reply !== 'object' || typeof reply.ok !== 'boolean') {
      throw createError(ErrorCode.PROTOCOL, `malformed ${event} reply from ${this.name}`);
    }
    if (!reply.ok) throw fromWireError(reply.error);
    const { ok: _ok, ...body } = reply;
    if (!(Requests[event].reply as (v: unknown) => boolean)(body)) {
      throw createError(ErrorCode.PROTOCOL, `malformed ${event} reply from ${this.name}`);
    }
    return body as ReplyOf<E>;
  }

  /** Emits `event` and waits for its ack: TIMEOUT without one, DISCONNECTED when the connection went meanwhile. */
  private async ask(event: string, frame: unknown, timeoutMs: number): Promise<Reply<object>> {
    try {
      return await this.socket.ask(event, frame, timeoutMs);
    } catch (err) {
      if (!this.socket.connected) throw createError(ErrorCode.DISCONNECTED, `connection to ${this.name} lost`);
      throw createError(ErrorCode.TIMEOUT, `no answer from ${this.name} to ${event} within ${timeoutMs}ms`, err);
    }
  }

  /** Best effort, no reply expected. */
  notify(event: 'abort', frame: { lease: string }): void {
    if (this.socket.connected) this.socket.notify(event, frame);
  }

  /** What `relay status` shows: RTT, free space and transfers only while they are current (connected). */
  snapshot(): LinkSnapshot {
    const current = this.state === LinkState.CONNECTED;
    return {
      name: this.name,
      url: this.url,
      state: this.state,
      rttMs: current ? this.rttMs : null,
      lastHeartbeatAgoMs: this.lastBeatAt === null ? null : Date.now() - this.lastBeatAt,
      node: this.status?.node ?? null,
      freeBytes: current ? this.status?.freeBytes ?? null : null,
      activeTransfers: current ? this.status?.activeTransfers ?? null : null,
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

  /**
   * A new connection is "connected" only once the receiver answered a first beat naming its protocol
   * version: a receiver of another version is refused here, with both versions in the message.
   */
  private async onConnect(): Promise<void> {
    let status: ReceiverStatus;
    try {
      status = await this.hello();
    } catch (err) {
      const e = toRelayError(err, ErrorCode.PROTOCOL);
      if (e.code === ErrorCode.PROTOCOL) return this.refuse(e);
      // No answer: drop the transport, Socket.IO reconnects with its backoff.
      this.lastError = e;
      this.log.debug({ err: e }, 'handshake beat failed');
      this.socket.dropTransport();
      return;
    }
    if (!this.socket.connected) return;
    this.status = status;
    this.lastError = null;
    this.setState(LinkState.CONNECTED);
    this.everConnected = true;
    this.heartbeat.start();
  }

  private async hello(): Promise<ReceiverStatus> {
    const sentAt = Date.now();
    // It announces the beat interval too, so the receiver watches for missed beats from the first one.
    const interval = this.opts.heartbeatMs > 0 ? { intervalMs: this.opts.heartbeatMs } : {};
    // Its reply is checked here, not by request(): a receiver of another version answers in another shape.
    const reply = await this.ask('heartbeat', { seq: 0, sentAt, ...interval }, 10_000);
    if (!reply || typeof reply !== 'object' || reply.ok !== true) throw createError(ErrorCode.PROTOCOL, `receiver ${this.name} refused the first heartbeat`);
    const { ok: _ok, ...body } = reply;
    const theirs = (body as { protocol?: unknown }).protocol;
    if (theirs !== PROTOCOL_VERSION || !isReceiverStatus(body)) {
      const version = typeof theirs === 'number' ? theirs : 1;
      throw createError(ErrorCode.PROTOCOL, `protocol mismatch: receiver ${this.name} speaks protocol v${version}, this sender v${PROTOCOL_VERSION}`);
    }
    this.rttMs = Date.now() - sentAt;
    return body;
  }

  /** A refusal no reconnect fixes by itself: wrong token or another protocol version. */
  private refuse(error: RelayError): void {
    this.lastError = error;
    this.log.warn({ url: this.url, err: error }, 'receiver refused this sender');
    this.socket.disconnect();
    this.retryRefusedLater();
    this.emit('refused', error);
  }

  /**
   * Sends a request that may confirm files (a commit, an identical check, a put) and gives its reply with
   * the "received" of each of `leases` that came before it (Socket.IO keeps order: a confirmation comes
   * before its ack), undefined for one that did not. Waiters are found by lease, not by a listener each,
   * and none outlives its request.
   */
  async requestConfirming<E extends RequestName>(
    event: E, frame: RequestOf<E>, timeoutMs: number, leases: readonly string[],
  ): Promise<{ reply: ReplyOf<E>; received: Array<ReceivedFrame | undefined> }> {
    for (const lease of leases) this.confirmations.set(lease, undefined);
    const take = (): Array<ReceivedFrame | undefined> => leases.map((lease) => {
      const frame = this.confirmations.get(lease);
      this.confirmations.delete(lease);
      return frame;
    });
    let reply: ReplyOf<E>;
    try {
      reply = await this.request(event, frame, timeoutMs);
    } catch (err) {
      take();
      throw err;
    }
    return { reply, received: take() };
  }

  /** A "received" event: only the leases a commit, identical check or put is waiting for are kept. */
  private onReceived(frames: unknown): void {
    if (!isReceivedFrames(frames)) return void this.log.warn('malformed "received" event ignored');
    for (const frame of frames) if (this.confirmations.has(frame.lease)) this.confirmations.set(frame.lease, frame);
  }

  private onDisconnect(reason: string): void {
    this.heartbeat.stop();
    // Never replay stale requests (chunks of a dead attempt) on the next connection.
    this.socket.forgetQueued();
    // Why it is down, until a reconnect attempt says more (socket.io's reasons, in words).
    const said: Record<string, string> = {
      'transport close': 'the receiver closed the connection', 'transport error': 'the connection failed',
      'ping timeout': 'the receiver stopped answering', 'io server disconnect': 'the receiver ended the connection',
    };
    this.lastError ??= createError(ErrorCode.DISCONNECTED, `connection lost: ${said[reason] ?? reason}`);
    this.setState(LinkState.DISCONNECTED, { reason });
  }

  private onConnectError(err: Error & { data?: { code?: string; message?: string } }): void {
    const { error, refusal } = connectFailure(err, this.name, this.url);
    if (refusal === 'protocol') return this.refuse(error);
    if (refusal === 'tls') {
      // Never a fallback to plain: the link keeps retrying (a fixed certificate is picked up), jobs fail now.
      if (this.lastError?.code !== ErrorCode.TLS) this.log.warn({ url: this.url, reason: error.message }, 'TLS connection refused');
      this.lastError = error;
      this.emit('refused', error);
      return;
    }
    this.lastError = error;
    if (refusal === 'auth') {
      this.log.warn({ url: this.url }, 'receiver refused the token');
      this.retryRefusedLater();
      this.emit('refused', error);
      return;
    }
    this.log.debug({ err }, 'connect attempt failed');
  }

  /** An agent's link asks again, slowly, after a refusal (an operator may fix the token); a direct send does not. */
  private retryRefusedLater(): void {
    if (!this.opts.retryAuth || this.state === LinkState.CLOSED) return;
    clearTimeout(this.authRetryTimer);
    this.authRetryTimer = setTimeout(() => { if (!this.detached) this.socket.connect(); }, this.opts.reconnectDelayMaxMs * 6);
    this.authRetryTimer.unref();
  }
}
