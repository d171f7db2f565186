/**
 * Preloaded (`node --import`) into short-lived bench children: on exit, writes the process's own CPU time
 * and peak RSS to $BENCH_RUSAGE_FILE, which /proc can no longer tell once the process is gone.
 */
import { writeFileSync } from 'node:fs';

const out = process.env.BENCH_RUSAGE_FILE;
if (out) {
  process.on('exit', () => {
    const r = process.resourceUsage();
    writeFileSync(out, JSON.stringify({ cpuSec: (r.userCPUTime + r.systemCPUTime) / 1e6, peakRssMB: r.maxRSS / 1024 }));
  });
}
