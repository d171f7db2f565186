/**
 * The sender agent's optional http listener (--http): GET /healthz for a container healthcheck and
 * GET /metrics for Prometheus. It serves nothing else: sends go through the control socket only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '@relayer/common';
import { serveHealthAndMetrics } from '@relayer/common/metrics-text';
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

  constructor(private readonly listen: HttpListen, private readonly health: () => AgentHealth, private readonly metrics: { registry: Registry }, private readonly log: Logger) {
    this.server = createServer((req, res) => void serveHealthAndMetrics(req, res, () => ({ ok: true, body: this.health() }), this.metrics.registry));
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
}
