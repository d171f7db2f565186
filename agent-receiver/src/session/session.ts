/**
 * One sender's connection: validates its frames against the request map, routes them to the transfer
 * registry, answers every request with a result or a coded error, and bounds the chunk bytes it holds
 * (reading from the connection stops while they are over the budget). A bad frame costs the sender an
 * error reply, never the server. The session is the Owner of its transfers; its signal aborts on disconnect.
 */
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import {
  createError, ErrorCode, isAbortFrame, isAckCallback, PROTOCOL_VERSION, REQUEST_NAMES, Requests, toWireError,
  type HandshakeAuth, type PutFrame, type ReceivedFrame, type ReceiverStatus, type ReplyOf, type Reply, type RequestName,
  type RequestOf,
} from '@relayer/common';
import type { RequestOutcome } from '../metrics.js';
import type { Owner } from './owner.js';
import type { TransferRegistry } from '../transfer/transfer-registry.js';
import type { Releases } from '../release/releases.js';
import { PUT_FILE_COST, STALE_AFTER_BEATS } from '../limits.js';
import type { SenderSocket } from './sender-socket.js';


function putCost(frame: PutFrame): number {
  return frame.files.reduce((n, f) => n + Math.max(f.data.length, PUT_FILE_COST), 0);
}


export interface SessionContext {
  registry: TransferRegistry;
  releases: Releases;
  status: (seq: number) => Promise<ReceiverStatus>;
  /** Chunk bytes one connection may hold before its reads stop. */
  maxBufferedBytes: number;
  /** Highest number of chunk bytes any connection held, for stats. */
  onBuffered: (bytes: number) => void;
  onClosed: (session: Session) => void;
  /** Sees the outcome of every request, before its reply goes out (the receiver's metrics). */
  observe: (request: RequestName, frame: unknown, outcome: RequestOutcome) => void;
  /** What the sender is told about where a received file is (node, host path). */
  describe: (received: ReceivedFrame) => ReceivedFrame;
}

type Handlers = { [E in RequestName]: (frame: RequestOf<E>) => Promise<ReplyOf<E>> };

export class Session implements Owner {
  readonly id: string;
  readonly log: Logger;
  private readonly controller = new AbortController();
  private lastBeatAt = 0;
  private stale = false;
  private staleTimer: NodeJS.Timeout | undefined;
  private readonly sender: string;
  private buffered = 0;
  private paused = false;

  constructor(private readonly ctx: SessionContext, private readonly socket: SenderSocket, parentLog: Logger) {
    this.id = socket.id;
    const auth = socket.handshake.auth as Partial<HandshakeAuth>;
    const peer = socket.handshake.address;
    this.sender = typeof auth.sender === 'string' ? auth.sender.slice(0, 100) : peer;
    this.log = parentLog.child({ peer, sender: this.sender });
    this.log.info({ version: typeof auth.version === 'string' ? auth.version.slice(0, 64) : undefined, protocol: PROTOCOL_VERSION }, 'sender connected');

    const registry = ctx.registry;
    // Every request waiting on a name's lock listens on this signal; a sender with many files in flight
    // has that many waiting, which is expected (bounded by the per-connection transfer limit), not a leak.
    setMaxListeners(2 * registry.limits.maxTransfersPerConnection + 16, this.controller.signal);
    const handlers: Handlers = {
      offer: (f) => registry.offer(this, f),
      chunk: (f) => this.buffering(f.data.length, () => registry.chunk(this, f)),
      // Every confirmation goes out as a "received" event before the ack (Socket.IO keeps order): a sender
      // that sees the ack has seen each confirmation it covers.
      identical: async (f) => {
        const { identical, received } = await registry.identical(this, f);
        if (received) this.socket.received([ctx.describe(received)]);
        return { identical };
      },
      commit: async (f) => {
        this.socket.received([ctx.describe(await registry.commit(this, f))]);
        return {};
      },
      // Small files whole: counted against the buffer budget (at least PUT_FILE_COST each, so a frame of empty
      // files cannot make the receiver open descriptors without bound). One "received" for the files published.
      put: (f) => this.buffering(putCost(f), async () => {
        const { results } = await registry.put(this, f);
        const received = results.flatMap((r) => (r.ok ? [ctx.describe(r.received)] : []));
        if (received.length > 0) this.socket.received(received);
        return { results: results.map((r) => (r.ok ? { ok: true as const } : r)) };
      }),
      heartbeat: async (f) => {
        this.onBeat(f.seq, f.intervalMs);
        return ctx.status(f.seq);
      },
      release: (f) => ctx.releases.begin(f),
      stage: (f) => ctx.releases.stage(f),
      switch: (f) => ctx.releases.switchTo(f),
      rollback: (f) => ctx.releases.rollback(f),
      discard: (f) => ctx.releases.discard(f),
      releases: (f) => ctx.releases.list(f),
      action: (f) => ctx.releases.checkAction(f),
      run: (f) => ctx.releases.run(f),
    };
    for (const event of REQUEST_NAMES) this.route(event, handlers[event] as (f: unknown) => Promise<object>);
    socket.onAbort((f: unknown) => {
      if (!isAbortFrame(f)) return void this.log.warn('malformed abort frame ignored');
      void registry.abort(this, f.lease);
    });
    socket.onError((err) => this.log.info({ reason: err.message }, 'connection error: closing it'));
    socket.onDisconnect((reason) => {
      clearTimeout(this.staleTimer);
      this.controller.abort();
      this.log.info({ reason, lastBeatAgoMs: this.lastBeatAt ? Date.now() - this.lastBeatAt : undefined }, 'sender disconnected');
      ctx.onClosed(this);
      void registry.release(this);
    });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private route(event: RequestName, handler: (frame: unknown) => Promise<object>): void {
    const valid = Requests[event].request as (f: unknown) => boolean;
    this.socket.onRequest(event, (frame, ack) => {
      if (!isAckCallback(ack)) {
        this.log.warn({ event }, 'request without an ack callback: disconnecting');
        this.socket.disconnect();
        return;
      }
      const reply = ack as (r: Reply<object>) => void;
      // A handler that throws synchronously must become an error reply, not an exception thrown out of
      // Socket.IO's dispatch, which would crash the process.
      (async () => {
        if (!valid(frame)) throw createError(ErrorCode.PROTOCOL, `malformed ${event} frame`);
        return handler(frame);
      })().then(
        (result) => {
          this.ctx.observe(event, frame, { ok: true, result });
          reply({ ok: true, ...result });
        },
        (err: unknown) => {
          const error = toWireError(err);
          if (error.code === ErrorCode.IO) this.log.error({ err, event }, 'request failed');
          this.ctx.observe(event, frame, { ok: false, code: error.code });
          reply({ ok: false, error });
        },
      );
    });
  }

  /**
   * Counts a chunk's bytes while it is handled. Over the budget, reading from this connection stops until
   * writes catch up: what one sender can make the receiver hold is bounded whatever it sends.
   */
  private async buffering<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
    this.buffered += bytes;
    this.ctx.onBuffered(this.buffered);
    if (this.buffered >= this.ctx.maxBufferedBytes && !this.paused) this.setPaused(true);
    try {
      return await fn();
    } finally {
      this.buffered -= bytes;
      if (this.paused && this.buffered < this.ctx.maxBufferedBytes) this.setPaused(false);
    }
  }

  private setPaused(paused: boolean): void {
    if (this.socket.pauseReading(paused)) this.paused = paused;
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
    this.socket.disconnect();
  }
}
