/**
 * Who gets a connection and a login: connection caps (total and per address), a deadline for a new
 * connection to become a websocket (half-open connections must not hold file descriptors), the token
 * check, a per-address backoff on failed logins and then a block, and failure logging as a rate (at
 * most one line per address per interval). A failed login closes its connection, so one connection
 * cannot carry a stream of guesses.
 */
import type { Server as HttpServer } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import type { Server as IoServer, Socket as IoSocket } from 'socket.io';
import { closeAfterRefusal } from './sender-socket.js';
import { ErrorCode, tokenAccepted, type HandshakeAuth, type Logger } from '@relayer/common';
import { MAX_TRACKED_ADDRESSES } from '../limits.js';

export interface AdmissionOptions {
  /** Open connections at once, over all addresses (http, websocket, half-open). Default 512. */
  maxConnections: number;
  /** Open connections at once from one address. Default 64. */
  maxConnectionsPerAddress: number;
  /**
   * How long a new connection may take to send its request headers, become a websocket and log in
   * (also the TLS handshake timeout). Default 10s.
   */
  handshakeTimeoutMs: number;
  /** Failed logins from one address, without a success in between, before the address is blocked. Default 10. */
  authFailuresBeforeBlock: number;
  /** How long a blocked address is refused at connect; also how long failures are remembered. Default 5 min. */
  authBlockMs: number;
  /** The answer to a failed login is delayed base × 2^(n-2) for the n-th failure (the first is not), capped. Default 250ms … 5s. */
  authDelayBaseMs: number;
  authDelayMaxMs: number;
  /** At most one log line per address per this interval about failed logins and refused connections. Default 60s. */
  authLogEveryMs: number;
}

export const ADMISSION_DEFAULTS: AdmissionOptions = {
  maxConnections: 512,
  maxConnectionsPerAddress: 64,
  handshakeTimeoutMs: 10_000,
  authFailuresBeforeBlock: 10,
  authBlockMs: 5 * 60_000,
  authDelayBaseMs: 250,
  authDelayMaxMs: 5000,
  authLogEveryMs: 60_000,
};


/** The delay before answering the n-th consecutive failed login from one address. */
export function authDelayMs(failures: number, o: Pick<AdmissionOptions, 'authDelayBaseMs' | 'authDelayMaxMs'>): number {
  if (failures <= 1) return 0;
  return Math.min(o.authDelayMaxMs, o.authDelayBaseMs * 2 ** Math.min(failures - 2, 30));
}

/** "::ffff:127.0.0.1" and "127.0.0.1" are one address. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

interface Peer {
  connections: number;
  failures: number;
  lastFailureAt: number;
  blockedUntil: number;
  /** Failed logins and refused connections not yet logged. */
  unloggedFailures: number;
  unloggedRefused: number;
  lastLogAt: number;
}

export class Admission {
  readonly options: AdmissionOptions;
  private readonly peers = new Map<string, Peer>();
  private total = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly tokens: readonly string[], options: Partial<AdmissionOptions>, private readonly log: Logger) {
    this.options = { ...ADMISSION_DEFAULTS, ...options };
    if (tokens.length === 0 || tokens.some((t) => typeof t !== 'string' || t === '')) throw new TypeError('at least one non-empty token is required');
  }

  /** Open connections now (for tests and status). */
  get connections(): number {
    return this.total;
  }

  /**
   * Installs the caps, the deadlines and the login check on the receiver's servers. `tls` says whether
   * the http server is an https one (its sockets become usable at 'secureConnection').
   */
  attach(http: HttpServer, io: IoServer, tls: boolean): void {
    const { handshakeTimeoutMs } = this.options;
    http.headersTimeout = handshakeTimeoutMs;
    http.requestTimeout = handshakeTimeoutMs * 2;
    io.connectTimeout(handshakeTimeoutMs);
    http.on('connection', (socket: NetSocket) => this.onConnection(socket));
    const deadlines = new WeakMap<object, NodeJS.Timeout>();
    http.on(tls ? 'secureConnection' : 'connection', (socket: NetSocket) => {
      if (socket.destroyed) return;
      const t = setTimeout(() => socket.destroy(), handshakeTimeoutMs);
      t.unref();
      deadlines.set(socket, t);
      socket.once('close', () => clearTimeout(t));
    });
    // Past this point the http server's own timeouts (keep-alive) or Socket.IO's (connect, ping) apply.
    const settled = (socket: object): void => clearTimeout(deadlines.get(socket));
    http.on('request', (req) => settled(req.socket));
    http.on('upgrade', (req) => settled(req.socket));
    io.use((socket, next) => this.login(socket, next));
    this.timer = setInterval(() => this.flush(), Math.max(this.options.authLogEveryMs, 100));
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.flush(true);
  }

  /** Whether this address may connect now (not blocked). */
  blocked(address: string, now = Date.now()): boolean {
    return (this.peers.get(normalizeAddress(address))?.blockedUntil ?? 0) > now;
  }

  private peer(address: string): Peer {
    let p = this.peers.get(address);
    if (!p) {
      if (this.peers.size >= MAX_TRACKED_ADDRESSES) this.forgetOldest();
      p = { connections: 0, failures: 0, lastFailureAt: 0, blockedUntil: 0, unloggedFailures: 0, unloggedRefused: 0, lastLogAt: 0 };
      this.peers.set(address, p);
    }
    return p;
  }

  private onConnection(socket: NetSocket): void {
    const address = normalizeAddress(socket.remoteAddress);
    const p = this.peer(address);
    const now = Date.now();
    let why: string | undefined;
    if (p.blockedUntil > now) why = 'blocked after failed logins';
    else if (this.total >= this.options.maxConnections) why = `${this.options.maxConnections} connections open (--max-connections)`;
    else if (p.connections >= this.options.maxConnectionsPerAddress) why = `${this.options.maxConnectionsPerAddress} connections open from this address (--max-connections-per-address)`;
    if (why) {
      p.unloggedRefused++;
      this.maybeLog(address, p, now, why);
      socket.destroy();
      return;
    }
    this.total++;
    p.connections++;
    socket.once('close', () => {
      this.total--;
      p.connections--;
    });
  }

  private login(socket: IoSocket, next: (err?: Error) => void): void {
    const address = normalizeAddress(socket.handshake.address);
    const given = (socket.handshake.auth as Partial<HandshakeAuth> | undefined)?.token;
    const p = this.peer(address);
    const now = Date.now();
    if (tokenAccepted(this.tokens, given)) {
      p.failures = 0;
      return next();
    }
    if (now - p.lastFailureAt > this.options.authBlockMs) p.failures = 0;
    p.failures++;
    p.lastFailureAt = now;
    p.unloggedFailures++;
    const delayMs = authDelayMs(p.failures, this.options);
    if (p.failures >= this.options.authFailuresBeforeBlock) {
      p.blockedUntil = now + this.options.authBlockMs;
      this.log.warn({ peer: address, failures: p.failures, blockMs: this.options.authBlockMs }, 'address blocked after repeated failed logins');
    }
    this.maybeLog(address, p, now, 'bad or missing token', { tokenGiven: typeof given === 'string', delayMs });
    const refuse = (): void => {
      next(Object.assign(new Error('authentication failed: bad or missing token'), { data: { code: ErrorCode.AUTH } }));
      // The refusal is written on the next tick; close after it, so this connection carries no second guess.
      closeAfterRefusal(socket);
    };
    if (delayMs > 0) setTimeout(refuse, delayMs).unref();
    else refuse();
  }

  /** Logs now if this address has not had a line within the interval; otherwise the flush will. */
  private maybeLog(address: string, p: Peer, now: number, reason: string, extra: object = {}): void {
    if (now - p.lastLogAt < this.options.authLogEveryMs) return;
    this.logPeer(address, p, now, reason, extra);
  }

  private logPeer(address: string, p: Peer, now: number, reason?: string, extra: object = {}): void {
    if (p.unloggedFailures === 0 && p.unloggedRefused === 0) return;
    const sinceMs = p.lastLogAt ? now - p.lastLogAt : undefined;
    this.log.warn({
      peer: address, failedLogins: p.unloggedFailures, refusedConnections: p.unloggedRefused, sinceMs,
      blocked: p.blockedUntil > now, reason, ...extra,
    }, p.unloggedFailures > 0 ? 'refused connection: bad or missing token' : 'refused connections');
    p.unloggedFailures = 0;
    p.unloggedRefused = 0;
    p.lastLogAt = now;
  }

  /** Logs what was held back, and forgets idle addresses whose failures have expired. */
  private flush(all = false): void {
    const now = Date.now();
    for (const [address, p] of this.peers) {
      if (all || now - p.lastLogAt >= this.options.authLogEveryMs) this.logPeer(address, p, now);
      const idle = p.connections === 0 && p.blockedUntil <= now && now - p.lastFailureAt > this.options.authBlockMs;
      if (idle && p.unloggedFailures === 0 && p.unloggedRefused === 0) this.peers.delete(address);
    }
  }

  private forgetOldest(): void {
    for (const [address, p] of this.peers) {
      if (p.connections === 0) {
        this.peers.delete(address);
        return;
      }
    }
  }
}
