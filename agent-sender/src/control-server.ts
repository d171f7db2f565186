/**
 * The agent's control socket: the `ws` package serving on a Unix socket (mode 0660). One request per
 * connection; for a send, the job's events stream back, and a closed connection cancels the job.
 */
import { chmod, unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createError, ErrorCode, toRelayError, type Logger } from '@relayer/common';
import { isControlRequest, type ControlMessage, type ControlRequest } from './control-protocol.js';

export type RequestHandler = (req: ControlRequest, reply: (m: ControlMessage) => void, signal: AbortSignal) => Promise<void>;

/** Largest control message accepted: a request is a list of paths, not file data. */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export class ControlServer {
  private readonly http: Server = createServer((_req, res) => res.writeHead(426).end());
  private readonly wss = new WebSocketServer({ server: this.http, maxPayload: MAX_REQUEST_BYTES, perMessageDeflate: false });
  private readonly open = new Set<WebSocket>();

  constructor(private readonly socketPath: string, private readonly handler: RequestHandler, private readonly log: Logger) {
    this.wss.on('connection', (ws) => this.onConnection(ws));
  }

  async start(): Promise<void> {
    await removeStaleSocket(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.socketPath, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    // Group members (e.g. the jenkins user) may connect; others may not.
    await chmod(this.socketPath, 0o660);
  }

  async close(): Promise<void> {
    for (const ws of this.open) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    await unlink(this.socketPath).catch(() => undefined);
  }

  private onConnection(ws: WebSocket): void {
    this.open.add(ws);
    const controller = new AbortController();
    let started = false;
    ws.on('close', () => {
      this.open.delete(ws);
      controller.abort();
    });
    ws.on('error', (err) => this.log.debug({ err }, 'control connection error'));
    ws.on('message', (data) => {
      if (started) return;
      started = true;
      const reply = (m: ControlMessage): void => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
      };
      let req: unknown;
      try {
        req = JSON.parse(String(data));
      } catch {
        req = undefined;
      }
      if (!isControlRequest(req)) {
        reply({ type: 'error', code: ErrorCode.PROTOCOL, message: 'malformed control request' });
        ws.close();
        return;
      }
      this.handler(req, reply, controller.signal).then(
        () => ws.close(),
        (err: unknown) => {
          const e = toRelayError(err);
          reply({ type: 'error', code: e.code, message: e.message });
          ws.close();
        },
      );
    });
  }
}

/** A socket file left by a dead agent is replaced; one that still answers means an agent is running. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw createError(ErrorCode.USAGE, `another agent is already listening on ${socketPath}`);
  await unlink(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
