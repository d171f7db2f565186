/**
 * The disk's own limit for small files that are each durable before they count (a child process, so it
 * runs with the same libuv thread pool as an agent): for each file, open a temp name, write, fsync,
 * close, rename to the final name; `parallel` files at once. Prints {"files": n, "ms": t}.
 *   node disk-probe.js <dir> <files> <bytes> <parallel>
 */
import { randomFillSync } from 'node:crypto';
import { mkdir, open, rename } from 'node:fs/promises';
import path from 'node:path';

const [dir, files, bytes, parallel] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
await mkdir(dir, { recursive: true });
const data = randomFillSync(Buffer.alloc(bytes));
let next = 0;
const t0 = performance.now();
const worker = async (): Promise<void> => {
  for (let i = next++; i < files; i = next++) {
    const final = path.join(dir, `f${i}`);
    const fh = await open(`${final}.tmp`, 'w');
    await fh.write(data, 0, data.length, 0);
    await fh.sync();
    await fh.close();
    await rename(`${final}.tmp`, final);
  }
};
await Promise.all(Array.from({ length: Math.min(parallel, files) }, worker));
console.log(JSON.stringify({ files, ms: performance.now() - t0 }));
