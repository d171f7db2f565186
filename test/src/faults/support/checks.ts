/** The assertions every scenario ends with: identical files, no torn final name, processes still serving. */
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { randomFile, sha256File, type SourceFile } from './harness.js';
import { describeSend, healthz, send } from './processes.js';
import type { FinalNameWatcher } from './watcher.js';

export const PARTIAL_DIR = '.relay-partial';

/** The published file equals the source byte for byte. */
export async function expectIdentical(published: string, source: SourceFile): Promise<void> {
  expect(await sha256File(published), `${published} differs from ${source.path}`).to.equal(source.sha256);
}

/** Entries left in <dir>/.relay-partial (none after every completed send). */
export async function partialEntries(dir: string): Promise<string[]> {
  return readdir(path.join(dir, PARTIAL_DIR)).catch(() => []);
}

/** Bytes held in <dir>/.relay-partial right now (every file of every partial). */
export async function partialBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await partialEntries(dir)) total += await stat(path.join(dir, PARTIAL_DIR, e)).then((s) => s.size, () => 0);
  return total;
}

/** Stops the watcher and asserts that no final name ever held a partial or wrong file. */
export async function expectNoTornFile(w: FinalNameWatcher): Promise<void> {
  await w.stop();
  expect(w.violations, `final names that held a partial or wrong file:\n${w.violations.join('\n')}`).to.deep.equal([]);
}

export interface ServingTarget {
  /** The receiver's URL as the sending side reaches it. */
  url: string;
  /** The receiver's folder. */
  dir: string;
  /** Where to run /healthz from (a namespace) when the URL is not reachable from here. */
  netns?: string;
  /** Send through this agent socket to receiver `name`; else `--direct` to url. */
  agent?: { socket: string; name: string };
  /** A folder the sender may read (under the agent's --allow-root). */
  srcDir: string;
  watcher?: FinalNameWatcher;
  /** Run the direct send inside this namespace (where url is reachable). */
  sendNetns?: string;
}

/** /healthz answers ok and the receiver still takes a new send end to end. */
export async function expectStillServing(t: ServingTarget): Promise<void> {
  const h = await healthz(t.url, t.netns);
  expect(h.status).to.equal('ok');
  const src = await randomFile(path.join(t.srcDir, `health-${randomBytes(4).toString('hex')}.bin`), 200_003);
  t.watcher?.allow(src.sha256);
  const as = `health/${path.basename(src.path)}`;
  const args = t.agent ? [src.path, '--to', t.agent.name, '--as', as] : [src.path, '--direct', '--to', t.url, '--as', as];
  const r = await send(args, { socket: t.agent?.socket, netns: t.agent ? undefined : t.sendNetns, timeoutMs: 60_000 });
  expect(r.code, describeSend(r)).to.equal(0);
  await expectIdentical(path.join(t.dir, as), src);
}
