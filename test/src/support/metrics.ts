/** Test support for /metrics and /healthz: fetch over real http, read one sample out of Prometheus text. */
import { expect } from 'chai';

export async function scrape(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/metrics`);
  expect(res.status).to.equal(200);
  expect(res.headers.get('content-type')).to.match(/^text\/plain/);
  return res.text();
}

/**
 * The value of the sample `name{labels}` (labels must match exactly, in any order), or undefined when
 * there is no such sample. Histograms: ask for `<name>_count` / `<name>_sum`.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '').split(/,(?=[a-zA-Z_]+=")/).filter(Boolean).sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

/** sample(), treating a missing sample as 0 (a labelled counter appears only once it moved). */
export function count(text: string, name: string, labels: Record<string, string> = {}): number {
  return sample(text, name, labels) ?? 0;
}
