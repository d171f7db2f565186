#!/usr/bin/env node
// Plain ws vs TLS (wss) side by side: the same file, loopback, interleaved rounds, median wall time of a
// confirmed send (fsynced on the receiver), and the CPU time it took (sender and receiver both run in this
// process, so CPU seconds are the steadier figure on a shared, loaded machine). Run after `npm ci` (it uses the built packages):
//   TLS_BENCH_MB=256 TLS_BENCH_ROUNDS=3 node scripts/tls-bench.mjs
import { randomFillSync } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { Receiver } from '@relayer/agent-receiver';
import { makeCerts, parseCertNode, sendDirect } from '@relayer/agent-sender';

const MB = Number(process.env.TLS_BENCH_MB ?? 256);
const ROUNDS = Number(process.env.TLS_BENCH_ROUNDS ?? 3);
const TOKEN = 'bench-token';
const log = pino({ level: 'silent' });
const work = await mkdtemp(path.join(os.tmpdir(), 'relay-tls-bench-'));
try {
  const file = path.join(work, 'payload.bin');
  const fh = await open(file, 'w');
  const buf = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < MB; i++) await fh.write(randomFillSync(buf));
  await fh.close();
  const pki = await makeCerts({ out: path.join(work, 'pki'), nodes: [parseCertNode('local=127.0.0.1')] });
  const ca = await readFile(pki.ca.cert);
  const tls = { cert: await readFile(pki.nodes[0].cert), key: await readFile(pki.nodes[0].key) };
  const start = async (name, extra) => {
    const r = new Receiver({ host: '127.0.0.1', port: 0, token: TOKEN, minFree: 0, dir: path.join(work, name), logger: log, ...extra });
    await r.start();
    return r;
  };
  const plain = await start('plain', {});
  const secure = await start('tls', { tls });
  const times = { plain: [], tls: [] };
  const cpu = { plain: [], tls: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [label, r] of [['plain', plain], ['tls', secure]]) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      const ok = await sendDirect({ paths: [file], as: `r${round}.bin`, urls: [r.url], token: TOKEN, ca, transfer: {}, logger: log }, () => undefined);
      if (!ok) throw new Error(`${label} send failed`);
      times[label].push(Number(process.hrtime.bigint() - t0) / 1e9);
      const c = process.cpuUsage(c0);
      cpu[label].push((c.user + c.system) / 1e6);
    }
  }
  await plain.close();
  await secure.close();
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`${MB} MiB, ${ROUNDS} rounds, loopback, default chunk/window, ${os.cpus().length} cores`);
  for (const label of ['plain', 'tls']) {
    const m = median(times[label]);
    console.log(`${label.padEnd(5)} median ${m.toFixed(2)} s  ${(MB / m).toFixed(0)} MiB/s  cpu ${median(cpu[label]).toFixed(2)} s  (wall: ${times[label].map((t) => t.toFixed(2)).join(', ')})`);
  }
  console.log(`TLS/plain: wall ${(median(times.tls) / median(times.plain)).toFixed(2)}x, cpu ${(median(cpu.tls) / median(cpu.plain)).toFixed(2)}x`);
} finally {
  await rm(work, { recursive: true, force: true });
}
