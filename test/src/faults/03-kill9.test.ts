/**
 * Scenario 3: kill -9 at random points. Three versions of one name are sent in turn, so the final name
 * holds an older version while a newer one is in flight. 20 times the receiver is killed (and restarted
 * on the same port: the running `relay send` carries on), 20 times the sender agent is killed (restarted,
 * and the same `relay send` run again). After every kill the final name is absent or exactly one whole
 * version; every send ends exit 0 with the right version, resuming what the receiver kept, and
 * `.relay-partial` is empty once it completed.
 */
import path from 'node:path';
import { expect } from 'chai';
import { expectNoTornFile, expectStillServing, partialBytes, partialEntries } from './support/checks.js';
import { Cleanup, delay, figure, MiB, randInt, randomFile, sha256File, tmpDir, type SourceFile } from './support/harness.js';
import { describeSend, freePort, socketPathIn, startAgent, startReceiver, startSend, type BinProcess, type ReceiverBin, type SendResult } from './support/processes.js';
import { FinalNameWatcher } from './support/watcher.js';

const KILLS = Number(process.env.FAULTS_KILLS ?? 20);
const NAME = 'releases/app.bin';
/** More than a partial's bookkeeping: the partial holds file bytes. */
const HELD = 64 * 1024;


/**
 * Waits for a random kill point: mostly a random byte position of the transfer (the partial has grown past
 * it), sometimes a random moment (before the offer, around the commit, after the publish).
 */
async function killPoint(inbox: string, v: SourceFile): Promise<string> {
  if (Math.random() < 0.3) {
    const ms = randInt(50, 1500);
    await delay(ms);
    return `at ${ms} ms`;
  }
  const target = Math.floor(v.size * Math.random());
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (await partialBytes(inbox)) < target) await delay(15);
  return `at byte ${target}`;
}

/** The final name is absent or holds exactly one whole version. */
async function finalState(inbox: string, versions: SourceFile[]): Promise<string> {
  const file = path.join(inbox, NAME);
  const digest = await sha256File(file).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 'absent' : Promise.reject(err)));
  if (digest === 'absent') return 'absent';
  const i = versions.findIndex((v) => v.sha256 === digest);
  expect(i, `${NAME} holds ${digest}: no whole version`).to.be.at.least(0);
  return `v${i + 1}`;
}

describe('faults 3: kill -9 of the receiver (20) and of the sender agent (20) with several versions of one name', function () {
  this.timeout(300_000);
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it('never leaves a torn final file; every re-run resumes and exits 0; .relay-partial empty after each send', async () => {
    const work = await tmpDir(cleanup, 'rlyf-src-');
    const versions = await Promise.all([8, 12, 16].map((mb, i) => randomFile(path.join(work, `v${i + 1}.bin`), mb * MiB + i * 4099)));
    const tally = { receiverKills: 0, agentKills: 0, resumed: 0, reruns: 0, states: {} as Record<string, number>, checks: 0 };
    const started = Date.now();

    /** One receiver + one agent of its own: the two kill loops run side by side without sharing anything. */
    const rig = async (tag: string) => {
      const inbox = await tmpDir(cleanup, `rlyf-inbox-${tag}-`);
      const port = await freePort();
      const rigWork = await tmpDir(cleanup, `rlyf-agent-${tag}-`);
      const socket = socketPathIn(rigWork);
      const agentSpec = { socket, receivers: { pi: `http://127.0.0.1:${port}` }, allowRoots: [work, rigWork] };
      const watcher = new FinalNameWatcher(inbox, () => false, 100).allow(...versions.map((v) => v.sha256)).start();
      cleanup.add('stop watcher', () => watcher.stop());
      return { inbox, port, socket, agentSpec, watcher, rigWork, receiver: await startReceiver(cleanup, { dir: inbox, port }), agent: await startAgent(cleanup, agentSpec) };
    };
    const sendArgs = (v: SourceFile): string[] => [v.path, '--to', 'pi', '--as', NAME, '--bwlimit', '32M', '--timeout', '1m'];
    const finish = async (inbox: string, r: SendResult, v: SourceFile, what: string): Promise<void> => {
      expect(r.code, `${what}: ${describeSend(r)}`).to.equal(0);
      expect(await finalState(inbox, versions), what).to.equal(`v${versions.indexOf(v) + 1}`);
      expect(await partialEntries(inbox), `${what}: .relay-partial after a completed send`).to.deep.equal([]);
    };
    const resumedOrUnchanged = (r: SendResult): boolean =>
      r.received.length === 1 && ((r.received[0]!.resumedFrom as number) > 0 || r.received[0]!.unchanged === true);
    const count = async (inbox: string): Promise<void> => {
      const state = await finalState(inbox, versions);
      tally.states[state] = (tally.states[state] ?? 0) + 1;
    };

    const receiverKills = async (): Promise<void> => {
      const g = await rig('r');
      let receiver: ReceiverBin = g.receiver;
      for (let k = 0; k < KILLS; k++) {
        // The receiver dies at a random point; restarted on the same port, the same send carries on.
        const v = versions[randInt(0, versions.length - 1)]!;
        const job = startSend(sendArgs(v), { socket: g.socket, timeoutMs: 90_000 });
        await killPoint(g.inbox, v);
        await receiver.kill9();
        tally.receiverKills++;
        const held = await partialBytes(g.inbox);
        await count(g.inbox);
        receiver = await startReceiver(cleanup, { dir: g.inbox, port: g.port });
        const r = await job.done;
        await finish(g.inbox, r, v, `receiver kill ${k + 1}`);
        if (held > HELD) {
          expect(resumedOrUnchanged(r), `receiver kill ${k + 1}: ${held} partial bytes kept, the send did not resume: ${JSON.stringify(r.received)}`).to.equal(true);
          tally.resumed++;
        }
      }
      await expectStillServing({ url: receiver.url, dir: g.inbox, agent: { socket: g.socket, name: 'pi' }, srcDir: g.rigWork, watcher: g.watcher });
      await expectNoTornFile(g.watcher);
      tally.checks += g.watcher.checked;
    };

    const agentKills = async (): Promise<void> => {
      const g = await rig('a');
      let agent: BinProcess = g.agent;
      for (let k = 0; k < KILLS; k++) {
        // The agent dies at a random point; restarted, the same `relay send` is run again and resumes.
        const v = versions[randInt(0, versions.length - 1)]!;
        const job = startSend(sendArgs(v), { socket: g.socket, timeoutMs: 90_000 });
        await killPoint(g.inbox, v);
        await agent.kill9();
        tally.agentKills++;
        const first = await job.done;
        await count(g.inbox);
        // What the receiver kept: the partial, once the dead connection's last writes landed.
        await delay(50);
        const held = first.code === 0 ? 0 : await partialBytes(g.inbox);
        agent = await startAgent(cleanup, g.agentSpec);
        const r = await startSend(sendArgs(v), { socket: g.socket, timeoutMs: 90_000 }).done;
        tally.reruns++;
        await finish(g.inbox, r, v, `agent kill ${k + 1} (first run exited ${first.code})`);
        if (held > HELD) {
          expect(resumedOrUnchanged(r), `agent kill ${k + 1}: the receiver held ${held} partial bytes, the re-run did not resume: ${JSON.stringify(r.received)}`).to.equal(true);
          tally.resumed++;
        }
      }
      await expectStillServing({ url: g.receiver.url, dir: g.inbox, agent: { socket: g.socket, name: 'pi' }, srcDir: g.rigWork, watcher: g.watcher });
      await expectNoTornFile(g.watcher);
      tally.checks += g.watcher.checked;
    };

    await Promise.all([receiverKills(), agentKills()]);
    const secs = (Date.now() - started) / 1000;
    await figure('3. kill -9', `${tally.receiverKills}/${KILLS} receiver kills and ${tally.agentKills}/${KILLS} agent kills survived with 3 versions of one name: ` +
      `final name after each kill ${JSON.stringify(tally.states)} (absent or one whole version, never torn), ${tally.resumed} sends resumed from the receiver's partial, ` +
      `every send exit 0 with the right version and .relay-partial empty, ${tally.checks} final-name checks clean, ${secs.toFixed(1)} s`,
    { ...tally, seconds: secs });
  });
});
