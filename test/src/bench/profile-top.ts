/**
 * Summarizes V8 .cpuprofile files (from `node --cpu-prof`, e.g. `npm run bench -- --profile DIR`):
 * self time per function, top N, as a share of the profile's sampled time.
 *   node test/dist/bench/profile-top.js <file.cpuprofile> [top]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = [process.argv[2]!, process.argv[3]];
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
prof.samples.forEach((id, i) => {
  const dt = prof.timeDeltas[i] ?? 0;
  const n = byId.get(id)!;
  const { functionName, url, lineNumber } = n.callFrame;
  const where = url ? `${url.replace(/^file:\/\//, '').split('/node_modules/').pop()!.replace(/^.*\/(agent-\w+|common)\/dist\//, '$1/')}:${lineNumber + 1}` : '';
  const key = `${functionName || '(anonymous)'} ${where}`.trim();
  self.set(key, (self.get(key) ?? 0) + dt);
  total += dt;
});
const idle = self.get('(idle)') ?? 0;
console.log(`${path.basename(file)}: ${(total / 1e6).toFixed(2)} s sampled, ${(idle / 1e6).toFixed(2)} s idle, ${((total - idle) / 1e6).toFixed(2)} s busy`);
const rows = [...self.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 20));
for (const [k, us] of rows) console.log(`${((100 * us) / (total - idle)).toFixed(1).padStart(5)}% busy  ${(us / 1e3).toFixed(0).padStart(6)} ms  ${k}`);
