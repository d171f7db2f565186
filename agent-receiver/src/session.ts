/**
 * One sender's connection: decodes and validates its frames, routes them to transfers, answers every
 * request with a result or a coded error. A bad frame costs the sender an error reply, never the server.
 */
import type { Socket } from 'socket.io';
import type { Logger } from 'pino';
import {
  createError, ErrorCode, Events, isAbortFrame, isAckCallback, isChunkFrame, isCommitFrame,
  isHeartbeatFrame, isOfferFrame, toWireError,
  type ClientToServerEvents, type HandshakeAuth, type Reply, type ServerToClientEvents,
} from '@relayer/common';
import type { Receiver } from './receiver.js';

export type ReceiverSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

type Handler = (frame: unknown) => Promise<object>;

/** Missed beats before a sender is logged as stale; the sender uses the same rule for receivers. */
const STALE_AFTER_BEATS = 3;

export class Session {
  readonly id: string;
  readonly log: Logger;
  private lastBeatAt = 0;
  private stale = false;
  private staleTimer: NodeJS.Timeout | undefined;
  private readonly sender: string;

  constructor(private readonly receiver: Receiver, private readonly socket: ReceiverSocket, parentLog: Logger) {
    this.id = socket.id;
    const auth = socket.handshake.auth as Partial<HandshakeAuth>;
    const peer = `${socket.handshake.address}`;
    this.sender = typeof auth.sender === 'string' ? auth.sender.slice(0, 100) : peer;
    this.log = parentLog.child({ peer, sender: this.sender });
    this.log.info({ version: auth.version }, 'sender connected');

    this.route(Events.OFFER, (f) => this.receiver.offer(this, this.valid(f, isOfferFrame, 'offer')));
    this.route(Events.CHUNK, (f) => this.receiver.chunk(this, this.valid(f, isChunkFrame, 'chunk')));
    this.route(Events.COMMIT, async (f) => {
      const received = await this.receiver.commit(this, this.valid(f, isCommitFrame, 'commit'));
      // The confirmation event goes out before the ack, so a sender that sees the ack has seen it too.
      this.socket.emit(Events.RECEIVED, received);
      return received;
    });
    this.route(Events.HEARTBEAT, async (f) => {
      const beat = this.valid(f, isHeartbeatFrame, 'heartbeat');
      this.onBeat(beat.seq, beat.intervalMs);
      return this.receiver.status(beat.seq);
    });
    socket.on(Events.ABORT, (f: unknown) => {
      if (!isAbortFrame(f)) return void this.log.warn('malformed abort frame ignored');
      void this.receiver.abort(this, f.transfer);
    });
    socket.on('error', (err) => this.log.info({ reason: err.message }, 'connection error: closing it'));
    socket.on('disconnect', (reason) => {
      clearTimeout(this.staleTimer);
      this.log.info({ reason, lastBeatAgoMs: this.lastBeatAt ? Date.now() - this.lastBeatAt : undefined }, 'sender disconnected');
      void this.receiver.detach(this);
    });
  }

  private valid<T>(frame: unknown, check: (f: unknown) => f is T, what: string): T {
    if (!check(frame)) throw createError(ErrorCode.PROTOCOL, `malformed ${what} frame`);
    return frame;
  }

  private route(event: string, handler: Handler): void {
    // Registered untyped on purpose: the peer is untrusted, so argument types are checked, not assumed.
    (this.socket as unknown as Socket).on(event, (frame: unknown, ack: unknown) => {
      if (!isAckCallback(ack)) {
        this.log.warn({ event }, 'request without an ack callback: disconnecting');
        this.socket.disconnect(true);
        return;
      }
      const reply = ack as (r: Reply<object>) => void;
      // A handler that throws synchronously (a malformed frame) must become an error reply, not an
      // exception thrown out of Socket.IO's dispatch, which would crash the process.
      (async () => handler(frame))().then(
        (result) => {
          this.receiver.metrics.observe(event, frame, { ok: true, result });
          reply({ ok: true, ...result });
        },
        (err: unknown) => {
          const error = toWireError(err);
          if (error.code === ErrorCode.IO) this.log.error({ err, event }, 'request failed');
          this.receiver.metrics.observe(event, frame, { ok: false, code: error.code });
          reply({ ok: false, error });
        },
      );
    });
  }

  /** Tracks the sender's beats: "stale" after 3 missed, "heartbeats resumed" when they come back. */
  private onBeat(seq: number, intervalMs: number | undefined): void {
    this.lastBeatAt = Date.now();
    this.log.debug({ seq }, 'heartbeat');
    if (this.stale) {
      this.stale = false;
      this.log.info({ seq }, 'sender heartbeats resumed');
    }
    if (intervalMs === undefined) return;
    clearTimeout(this.staleTimer);
    this.staleTimer = setTimeout(() => {
      this.stale = true;
      this.log.warn({ missed: STALE_AFTER_BEATS, intervalMs }, `sender stale: ${STALE_AFTER_BEATS} heartbeats missed`);
    }, intervalMs * STALE_AFTER_BEATS);
    this.staleTimer.unref();
  }

  /** For the receiver's summary line: who, and how long since its last heartbeat. */
  describe(): { sender: string; lastBeatAgoMs: number | null } {
    return { sender: this.sender, lastBeatAgoMs: this.lastBeatAt ? Date.now() - this.lastBeatAt : null };
  }

  disconnect(): void {
    this.socket.disconnect(true);
  }
}
