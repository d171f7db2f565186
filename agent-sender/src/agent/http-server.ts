/**
 * The sender agent's optional http listener (--http): GET /healthz for a container healthcheck and
 * GET /metrics for Prometheus. It serves nothing else: sends go through the control socket only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@relayer/common';
import type { HttpListen } from './agent-options.js';

export interface AgentHealth {
  status: 'ok';
  version: string;
  uptimeSec: number;
  receivers: number;
  connected: number;
  activeTransfers: number;
}

export class AgentHttpServer {
  private readonly server: Server;

  constructor(private readonly listen: HttpListen, private readonly health: () => AgentHealth, private readonly metrics: { text(): Promise<{ contentType: string; body: string }> }, private readonly log: Logger) {
    this.server = createServer((req, res) => void this.onRequest(req, res));
  }

  async start(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.listen.port, this.listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    this.log.info({ host: addr.address, port: addr.port }, 'http listener for /healthz and /metrics started');
    return addr;
  }

  address(): AddressInfo | null {
    return this.server.address() as AddressInfo | null;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = req.url?.split('?')[0];
    if (req.method === 'GET' && route === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.health()));
    } else if (req.method === 'GET' && route === '/metrics') {
      try {
        const { contentType, body } = await this.metrics.text();
        res.writeHead(200, { 'content-type': contentType }).end(body);
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`);
      }
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
    }
  }
}
