/**
 * The agent's control socket: the `ws` package serving on a Unix socket (mode 0660, in a folder checked
 * by socket-trust.ts). One request per connection; for a send, the job's events stream back, and a
 * closed connection cancels the job.
 */
import { unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { ErrorCode, toRelayError, type Logger } from '@relayer/common';
import { isControlRequest, type ControlMessage, type ControlRequest } from './control-protocol.js';
import { accessError, prepareSocketPath, secureSocket, type PrepareSocketOptions } from './socket-trust.js';

export type RequestHandler = (req: ControlRequest, reply: (m: ControlMessage) => void, signal: AbortSignal) => Promise<void>;

/** Largest control message accepted: a request is a list of paths, not file data. */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export class ControlServer {
  private readonly http: Server = createServer((_req, res) => res.writeHead(426).end());
  private readonly wss = new WebSocketServer({ server: this.http, maxPayload: MAX_REQUEST_BYTES, perMessageDeflate: false });
  private readonly open = new Set<WebSocket>();
  /** Each connection's reply queue, flushed before close() ends the connections. */
  private readonly queues = new Map<WebSocket, ReplyQueue>();

  private listening = false;

  constructor(private readonly socketPath: string, private readonly handler: RequestHandler, private readonly log: Logger,
    private readonly access: PrepareSocketOptions = {}) {
    this.wss.on('connection', (ws) => this.onConnection(ws));
    // ws re-emits the http server's errors; a listen error is handled by start(), never an unhandled 'error'.
    this.wss.on('error', (err) => this.log.debug({ err }, 'control server error'));
  }

  async start(): Promise<void> {
    await prepareSocketPath(this.socketPath, this.access);
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', (err: NodeJS.ErrnoException) => reject(accessError(err, this.socketPath)));
      this.http.listen(this.socketPath, () => resolve());
    });
    this.listening = true;
    // Group members (e.g. the jenkins user, or --socket-group) may connect; others may not.
    await secureSocket(this.socketPath, this.access);
  }

  async close(): Promise<void> {
    // Events already gathered (a file's 'received' among them) go out before the connections end.
    for (const q of this.queues.values()) q.flush();
    for (const ws of this.open) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    // Only a socket this server created is removed (never a file that was there before a failed start).
    if (this.listening) await unlink(this.socketPath).catch(() => undefined);
  }

  private onConnection(ws: WebSocket): void {
    this.open.add(ws);
    const controller = new AbortController();
    let started = false;
    ws.on('close', () => {
      this.open.delete(ws);
      this.queues.delete(ws);
      controller.abort();
    });
    ws.on('error', (err) => this.log.debug({ err }, 'control connection error'));
    ws.on('message', (data) => {
      if (started) return;
      started = true;
      let req: unknown;
      try {
        req = JSON.parse(String(data));
      } catch {
        req = undefined;
      }
      const out = new ReplyQueue(ws);
      this.queues.set(ws, out);
      if (!isControlRequest(req)) {
        out.push({ type: 'error', code: ErrorCode.PROTOCOL, message: 'malformed control request' });
        out.close();
        return;
      }
      this.handler(req, (m) => out.push(m), controller.signal).then(
        () => out.close(),
        (err: unknown) => {
          const e = toRelayError(err);
          out.push({ type: 'error', code: e.code, message: e.message });
          out.close();
        },
      );
    });
  }
}

/** The replies of one connection, gathered into one message per turn of the event loop. */
class ReplyQueue {
  private lines: string[] = [];
  private scheduled = false;

  constructor(private readonly ws: WebSocket) {}

  push(m: ControlMessage): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.lines.push(JSON.stringify(m));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends what is gathered, then closes the connection. */
  close(): void {
    this.flush();
    this.ws.close();
  }

  flush(): void {
    this.scheduled = false;
    if (this.lines.length === 0) return;
    const data = this.lines.join('\n');
    this.lines = [];
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(data);
  }
}
