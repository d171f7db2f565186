/**
 * Prometheus text for an agent's own registry plus the process metrics. The standard process_* / nodejs_*
 * metrics describe the process, not one agent, so they live in one registry per process (each
 * collectDefaultMetrics call starts an event-loop monitor that is never stopped), merged in at scrape time.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Registry, collectDefaultMetrics } from 'prom-client';

let processRegistry: Registry | undefined;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export async function metricsText(registry: Registry): Promise<{ contentType: string; body: string }> {
  const merged = Registry.merge([registry, processMetrics()]);
  return { contentType: merged.contentType, body: await merged.metrics() };
}

/** Transfer durations, the same buckets on both sides so a sender's and a receiver's histograms compare. */
export const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/** What an agent's /healthz says: its body, and whether it is fit to work (200) or not (503). */
export interface Health {
  ok: boolean;
  body: object;
}

/**
 * The one HTTP surface of both agents: GET /healthz (JSON, 200 or 503) and GET /metrics (Prometheus text
 * of `registry` with the process metrics); anything else is 404.
 */
export async function serveHealthAndMetrics(req: IncomingMessage, res: ServerResponse, health: () => Health | Promise<Health>, registry: Registry): Promise<void> {
  const route = req.url?.split('?')[0];
  if (req.method === 'GET' && route === '/healthz') {
    const h = await health();
    res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h.body));
  } else if (req.method === 'GET' && route === '/metrics') {
    try {
      const { contentType, body } = await metricsText(registry);
      res.writeHead(200, { 'content-type': contentType }).end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`);
    }
  } else {
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
  }
}
