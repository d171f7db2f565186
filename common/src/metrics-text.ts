/**
 * Prometheus text for an agent's own registry plus the process metrics. The standard process_* / nodejs_*
 * metrics describe the process, not one agent, so they live in one registry per process (each
 * collectDefaultMetrics call starts an event-loop monitor that is never stopped), merged in at scrape time.
 */
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
