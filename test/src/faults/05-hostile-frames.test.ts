/**
 * Scenario 5: 100,000 random and mutated packets against a live receiver, from authenticated and
 * unauthenticated connections, while a real transfer runs beside them. The receiver does not crash, its
 * open descriptors come back to where they started and its RSS to within 96 MiB of it, and the transfer
 * completes identical.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import { expectIdentical, expectNoTornFile, expectStillServing } from './support/checks.js';
import { Cleanup, fdTargets, figure, mib, MiB, procStats, randomFile, StatsSampler, TOKEN, tmpDir, waitUntil, type ProcStats } from './support/harness.js';
import { hostileMessage, type HostileContext } from './support/hostile.js';
import { describeSend, freePort, healthz, startReceiver, startSend, type ReceiverBin } from './support/processes.js';
import { RawPeer, WIRE } from './support/wire.js';
import { FinalNameWatcher } from './support/watcher.js';

const FRAMES = Number(process.env.FAULTS_FRAMES ?? 100_000);
const WORKERS = 4;
const DEADLINE_MS = 240_000;

interface Tally {
  sent: number;
  connections: number;
  authenticated: number;
  refusedAuth: number;
  closedByReceiver: number;
  probesAnswered: number;
  hung: number;
  oversized: number;
  kinds: Record<string, number>;
}

/**
 * Connections without the token come from other loopback addresses (127.0.x.y): the receiver blocks an
 * address after 10 failed logins, and the authenticated peers and the transfer beside share 127.0.0.1.
 */
const strangerAddress = (): string => `127.0.${1 + Math.floor(Math.random() * 200)}.${1 + Math.floor(Math.random() * 250)}`;

async function oneConnection(r: ReceiverBin, t: Tally, worker: number, n: number): Promise<void> {
  const mode = Math.random();
  const peer = await RawPeer.open('127.0.0.1', r.spec.port, mode < 0.75 ? {} : { localAddress: strangerAddress() });
  t.connections++;
  const ctx: HostileContext = { size: 1 + Math.floor(Math.random() * 4 * MiB), nextId: () => peer.takeId() };
  let authed = false;
  if (mode < 0.75) {
    authed = await peer.connect({ ...WIRE.auth(TOKEN), sender: `hostile-${worker}` });
    expect(authed, 'a connection with the right token is accepted').to.equal(true);
    t.authenticated++;
    if (Math.random() < 0.6) {
      const reply = (await peer.request(WIRE.events.offer, WIRE.offer(`hostile/w${worker}-${n}.bin`, ctx.size)))?.[0] as Record<string, unknown> | undefined;
      if (reply?.ok) ctx.id = WIRE.idOf(reply);
    }
  } else if (mode < 0.9) {
    const ok = await peer.connect(Math.random() < 0.5 ? WIRE.auth('wrong-' + randomBytes(8).toString('hex')) : Math.random() < 0.5 ? undefined : randomBytesValue());
    expect(ok, 'a connection without the token is refused').to.equal(false);
    t.refusedAuth++;
  } // else: no CONNECT at all, frames straight after the engine.io handshake
  const batch = 1 + Math.floor(Math.random() * 300);
  const brokenLast = Math.random() < 0.35;
  for (let i = 0; i < batch && !peer.isClosed; i++) {
    const [kind, msg] = hostileMessage(ctx, brokenLast && i === batch - 1);
    peer.send(msg);
    t.sent++;
    t.kinds[kind] = (t.kinds[kind] ?? 0) + 1;
  }
  if (authed) {
    // The connection either still answers (bad frames get error replies) or was dropped; never neither.
    const probe = peer.request(WIRE.events.heartbeat, WIRE.heartbeat(1), 15_000);
    const answer = await probe;
    if (answer) t.probesAnswered++;
    else if (peer.isClosed) t.closedByReceiver++;
    else t.hung++;
  } else {
    await Promise.race([peer.closed, new Promise((res) => setTimeout(res, 50))]);
    if (peer.isClosed) t.closedByReceiver++;
  }
  peer.close();
  await peer.closed;
}

function randomBytesValue(): unknown {
  return Math.random() < 0.5 ? 12345 : randomBytes(32);
}

/** A websocket message larger than the receiver's limit (one chunk plus the envelope). */
async function oversized(r: ReceiverBin, t: Tally): Promise<void> {
  const peer = await RawPeer.open('127.0.0.1', r.spec.port);
  t.connections++;
  await peer.connect(WIRE.auth(TOKEN));
  peer.send(Buffer.alloc(17 * MiB + 1, 0x91));
  t.sent++;
  t.oversized++;
  await Promise.race([peer.closed, new Promise((res) => setTimeout(res, 10_000))]);
  if (peer.isClosed) t.closedByReceiver++;
  peer.close();
  await peer.closed;
}

describe('faults 5: 100,000 hostile frames against a live receiver', function () {
  this.timeout(360_000);
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it('never crashes, its fds return to the starting level and its RSS to within 96 MiB of it, and a transfer beside completes', async () => {
    const inbox = await tmpDir(cleanup, 'rlyf-inbox-');
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const r = await startReceiver(cleanup, { dir: inbox, port: await freePort() });
    const beside = await randomFile(path.join(work, 'beside.bin'), 192 * MiB);
    const watcher = new FinalNameWatcher(inbox).allow(beside.sha256).start();
    cleanup.add('stop watcher', () => watcher.stop());
    // Warm up with one ordinary send, then take the starting level.
    await expectStillServing({ url: r.url, dir: inbox, srcDir: work, watcher });
    const start: ProcStats = await procStats(r.pid);
    const sampler = new StatsSampler(() => [r.pid]).start();
    cleanup.add('stop sampler', () => sampler.stop());

    const t0 = Date.now();
    const job = startSend([beside.path, '--direct', '--to', r.url, '--as', 'beside.bin', '--bwlimit', '12M', '--timeout', '2m'], { timeoutMs: 300_000 });
    const t: Tally = { sent: 0, connections: 0, authenticated: 0, refusedAuth: 0, closedByReceiver: 0, probesAnswered: 0, hung: 0, oversized: 0, kinds: {} };
    let n = 0;
    const worker = async (w: number): Promise<void> => {
      while (t.sent < FRAMES && Date.now() - t0 < DEADLINE_MS) {
        if (!r.alive) throw new Error(`the receiver died: ${r.stderr().slice(-3000)}`);
        if (w === 0 && t.oversized < 4 && t.sent > (t.oversized + 1) * (FRAMES / 5)) await oversized(r, t);
        else await oneConnection(r, t, w, n++);
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    const hostileSecs = (Date.now() - t0) / 1000;
    const done = await job.done;
    sampler.stop();
    expect(r.alive, `receiver alive after the flood: ${r.stderr().slice(-2000)}`).to.equal(true);
    expect(t.sent, `frames sent within ${DEADLINE_MS / 1000} s`).to.be.at.least(FRAMES);
    expect(t.hung, 'authenticated connections that neither answered nor were closed').to.equal(0);
    expect(done.code, describeSend(done)).to.equal(0);
    await expectIdentical(path.join(inbox, 'beside.bin'), beside);

    // Back near the starting level once the hostile connections are gone.
    await waitUntil('no hostile sessions left', async () => (await healthz(r.url)).senders === 0, 30_000, 200);
    let end = await procStats(r.pid);
    try {
      end = await waitUntil('fds back to the starting level', async () => {
        const s = await procStats(r.pid);
        return s.fds <= start.fds + 2 ? s : undefined;
      }, 20_000, 200);
    } catch {
      expect.fail(`open fds ${end.fds} vs ${start.fds} at the start: ${(await fdTargets(r.pid)).join(', ')}`);
    }
    const rssLimit = start.rssBytes + 96 * MiB;
    end = await waitUntil(`RSS back under ${mib(rssLimit)}`, async () => {
      const s = await procStats(r.pid);
      return s.rssBytes <= rssLimit ? s : undefined;
    }, 30_000, 500).catch(async () => procStats(r.pid));
    expect(end.rssBytes, `RSS ${mib(end.rssBytes)} at the end vs ${mib(start.rssBytes)} at the start`).to.be.at.most(rssLimit);
    await expectStillServing({ url: r.url, dir: inbox, srcDir: work, watcher });
    await expectNoTornFile(watcher);
    await figure('5. hostile frames', `${t.sent} hostile frames (${Object.keys(t.kinds).length} kinds, ${t.oversized} oversized messages) over ${t.connections} connections ` +
      `(${t.authenticated} authenticated, ${t.refusedAuth} refused the token, the rest never connected) in ${hostileSecs.toFixed(1)} s: no crash, ` +
      `${t.closedByReceiver} connections dropped by the receiver, ${t.probesAnswered} still answering, 0 hung; RSS ${mib(start.rssBytes)} -> max ${mib(sampler.maxRss)} -> ${mib(end.rssBytes)}, ` +
      `fds ${start.fds} -> max ${sampler.maxFds} -> ${end.fds}; a ${mib(beside.size)} transfer beside it completed identical`,
    { ...t, seconds: hostileSecs, rssStart: start.rssBytes, rssMax: sampler.maxRss, rssEnd: end.rssBytes, fdsStart: start.fds, fdsMax: sampler.maxFds, fdsEnd: end.fds });
  });
});
