/**
 * A send that is a deploy: a release (staged on every target, then switched on every target) and/or a
 * node action after it. Without either it is a plain job (job.ts). The step tells the truth: it exits 0
 * only if every target staged, switched and ran its action with exit status 0.
 *
 * Two phases: every target stages first (manifest, the files it does not hold, then `stage`, which
 * verifies the whole release and makes it durable there); only when all have staged does any switch.
 * If one cannot stage, none switches and the staged releases are discarded. A plain send's action is
 * asked once (a lost reply must not run it twice). A switch is asked again after a dropped connection,
 * while --timeout lasts: the receiver answers a repeated switch with the first one's reply, so its action
 * runs once. A switch that fails after others succeeded names the nodes now on the new release, and
 * --rollback-on-failure points them back.
 */
import path from 'node:path';
import {
  createError, ErrorCode, MAX_MANIFEST_PART, MAX_RUN_FILES, newReleaseId, RelayError, toRelayError,
  type ActionResult, type ReplyOf, type RequestOf, type ThenSpec,
} from '@relayer/common';
import type { Link } from '../link/link.js';
import type { JobEvent } from './job-events.js';
import { runJob, type JobContext, type JobSpec } from './job.js';
import { ManifestBuild, releaseFiles } from './manifest.js';
import { askNode, nodeRequestOptions, type NodeRequestOptions } from './node-request.js';
import { SmallFileReader } from './small-file-reader.js';
import type { ReleaseSpec } from './deploy-options.js';

export type { ReleaseSpec };

export interface DeploySpec extends JobSpec {
  release?: ReleaseSpec;
  then?: ThenSpec;
}

/** Names and bytes of manifest entries in one `release` frame: far under the receiver's message limit. */
const MANIFEST_PART_BYTES = 256 * 1024;
/** Stage again from the manifest when the node forgot the release (it restarted) at most this often: each round keeps
 * what that node already staged (its staging folder survives the restart). */
const STAGE_ROUNDS = 20;
/** Ask a switch again after a dropped connection, within --timeout, at most this often. */
const SWITCH_ATTEMPTS = 50;
/** A node that answers the manifest's first part with one of these created nothing there: nothing to discard. */
const REFUSED_AT_BEGIN: ReadonlySet<string> = new Set([ErrorCode.BAD_NAME, ErrorCode.USAGE, ErrorCode.LIMIT, ErrorCode.PROTOCOL, ErrorCode.NOT_ALLOWED]);

export async function runDeploy(spec: DeploySpec, ctx: JobContext, emit: (e: JobEvent) => void): Promise<boolean> {
  if (!spec.release && !spec.then) return runJob(spec, ctx, emit);
  const ask = nodeRequestOptions(spec.transfer, ctx.logger, ctx.signal);
  // An action no target defines is refused here, before any byte is sent.
  if (spec.then) await checkAction(spec.targets, spec.then.action, ask);
  return spec.release ? new ReleaseRun(spec, spec.release, ctx, emit, ask).run() : sendThenRun(spec, spec.then!, ctx, emit, ask);
}

/** Throws NO_ACTION naming the targets that do not define `action` (a rollback checks it too, before it switches). */
export async function checkAction(targets: Link[], action: string, ask: NodeRequestOptions, untouched = 'nothing was sent'): Promise<void> {
  const results = await Promise.allSettled(targets.map((link) => askNode(link, 'action', { action }, ask)));
  const refused = results.flatMap((r, i) => (r.status === 'rejected' ? [{ node: targets[i]!.name, err: toRelayError(r.reason) }] : []));
  if (refused.length === 0) return;
  const missing = refused.filter((r) => r.err.code === ErrorCode.NO_ACTION);
  if (missing.length > 0) throw createError(ErrorCode.NO_ACTION, `action ${JSON.stringify(action)} is not defined on ${missing.map((m) => m.node).join(', ')} (an executable file of that name in the receiver's --action-dir); ${untouched}`);
  throw new RelayError(refused[0]!.err.code, `${refused[0]!.node}: ${refused[0]!.err.message}`);
}

/** A node action's result on one target, or why it could not run, as the event the step prints. */
export async function runAction(link: Link, run: () => Promise<ActionResult>, then: ThenSpec, emit: (e: JobEvent) => void): Promise<boolean> {
  try {
    const action = await run();
    emit({ type: 'action', target: link.name, ...action, ...(action.ok ? {} : { code: ErrorCode.ACTION_FAILED }) });
    return action.ok;
  } catch (err) {
    const e = toRelayError(err);
    emit({ type: 'action', target: link.name, name: then.action, exitCode: null, signal: null, timedOut: false, durationMs: 0, output: `${e.code}: ${e.message}`, ok: false, code: e.code === ErrorCode.NO_ACTION ? e.code : ErrorCode.ACTION_FAILED });
    return false;
  }
}

/** Asked once, after the link is ready: a switch or an action must not run twice because a reply was lost. */
export async function once<T>(link: Link, ask: NodeRequestOptions, request: () => Promise<T>): Promise<T> {
  await link.ready(ask.timeoutMs, ask.signal);
  return request();
}

/**
 * A switch, asked again when the connection drops before its reply (the receiver remembers recent
 * switches and answers a repeat with the same reply, so the action after it runs once).
 */
export async function switchOn(link: Link, frame: RequestOf<'switch'>, ask: NodeRequestOptions, replyMs: number): Promise<ReplyOf<'switch'>> {
  const until = Date.now() + ask.timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await once(link, { ...ask, timeoutMs: Math.max(1, until - Date.now()) }, () => link.request('switch', frame, replyMs));
    } catch (err) {
      const e = toRelayError(err);
      if (e.code !== ErrorCode.DISCONNECTED || Date.now() >= until || attempt >= SWITCH_ATTEMPTS || ask.signal?.aborted) throw e;
      ask.logger.warn({ receiver: link.name, release: frame.release, id: frame.id, attempt }, 'connection dropped before the switch was answered: asking again');
    }
  }
}

/** How long a switch or run may take to answer: the action's own limit, its kill grace and the reply's. */
export function actionReplyMs(ask: NodeRequestOptions, then: ThenSpec | undefined): number {
  return ask.replyTimeoutMs + (then ? then.timeoutMs + 10_000 : 0);
}

/** A plain send, then the action on each target that confirmed every file. */
async function sendThenRun(spec: JobSpec, then: ThenSpec, ctx: JobContext, emit: (e: JobEvent) => void, ask: NodeRequestOptions): Promise<boolean> {
  const seen = new Map<string, { names: string[]; count: number; failed: number }>(spec.targets.map((l) => [l.name, { names: [], count: 0, failed: 0 }]));
  let done: Extract<JobEvent, { type: 'done' }> | undefined;
  const ok = await runJob(spec, ctx, (e) => {
    if (e.type === 'done') return void (done = e);
    if (e.type === 'received') {
      const t = seen.get(e.target)!;
      t.count++;
      t.names.push(e.name);
      if (t.names.length > MAX_RUN_FILES) t.names.shift();
    } else if (e.type === 'failed') seen.get(e.target)!.failed++;
    emit(e);
  });
  let failed = 0;
  await Promise.all(spec.targets.map(async (link) => {
    const t = seen.get(link.name)!;
    if (!ok && t.failed > 0) return;
    const timeout = actionReplyMs(ask, then);
    const ran = await runAction(link, () => once(link, ask, async () => (await link.request('run', { then, files: t.names, count: t.count }, timeout)).action), then, emit);
    if (!ran) failed++;
  }));
  emit({ ...done!, ok: ok && failed === 0, failed: done!.failed + failed, elapsedMs: done!.elapsedMs });
  return ok && failed === 0;
}

type Staged = { ok: true } | { ok: false; error: RelayError };
/** Where a release is staged on one node (from the manifest's first reply). */
type Where = { path?: string; node?: string; displayPath?: string };

class ReleaseRun {
  private readonly id = newReleaseId();
  /** Hashed while its first parts travel (set when the release starts). */
  private manifest!: ManifestBuild;
  private fileFailures = 0;
  private stepFailures = 0;
  private readonly started = Date.now();

  constructor(private readonly spec: DeploySpec, private readonly release: ReleaseSpec, private readonly ctx: JobContext,
    private readonly emit: (e: JobEvent) => void, private readonly ask: NodeRequestOptions) {}

  async run(): Promise<boolean> {
    const { spec, release, id } = this;
    const targets = spec.targets;
    let bytes = 0;
    for (let i = 0; i < spec.files.length; i++) bytes += spec.files.at(i)!.size;
    this.emit({ type: 'queued', files: spec.files.length, bytes, targets: targets.map((t) => t.name), skipped: spec.skipped ?? [], unsendable: (spec.unsendable ?? []).length });
    this.ctx.logger.info({ release: release.name, id, files: spec.files.length, targets: targets.map((t) => t.name) }, 'release started');
    if ((spec.unsendable ?? []).length > 0) {
      // A release is all of its files or nothing: one that cannot be sent fails it everywhere, before any byte.
      for (const u of spec.unsendable!) for (const link of targets) this.fail(link, u.name, 0, new RelayError(u.code, u.message));
      for (const link of targets) this.step(link, 'failed', { code: ErrorCode.SOURCE, message: `${spec.unsendable!.length} file(s) of the release cannot be sent` });
      return this.done(bytes);
    }
    // Each target is sent the manifest's parts as they are hashed: hashing overlaps the nodes' linking.
    const reader = this.ctx.reader ?? new SmallFileReader();
    this.manifest = new ManifestBuild(spec.files, { open: spec.open, signal: this.ctx.signal, cache: this.ctx.manifests, reader });
    const staged = await Promise.all(targets.map((link) => this.stageOn(link)));
    await this.manifest.done;
    if (!this.ctx.reader) await reader.close();
    const refused = staged.flatMap((s, i) => (s.ok ? [] : [{ link: targets[i]!, error: s.error }]));
    if (refused.length > 0) {
      for (const { link, error } of refused) this.step(link, 'failed', { code: error.code, message: `cannot stage: ${error.message}` });
      // No target switches: the releases staged (or half staged) are removed everywhere they may be.
      await Promise.all(targets.filter((link) => this.touched.has(link.name)).map(async (link) => {
        await askNode(link, 'discard', { release: release.name, id }, { ...this.ask, timeoutMs: Math.min(this.ask.timeoutMs, 30_000) }).then(
          () => this.step(link, 'discarded', {}),
          (err: unknown) => this.ctx.logger.warn({ receiver: link.name, err: toRelayError(err).message }, 'discard failed: the node removes it at a later switch'),
        );
      }));
      return this.done(bytes);
    }
    await this.switchAll();
    return this.done(bytes);
  }

  /** Manifest, files, stage on one target; again from the manifest if the node forgot the release (it restarted). */
  private async stageOn(link: Link): Promise<Staged> {
    const { release, id } = this;
    for (let round = 1; ; round++) {
      try {
        const { held, where } = await this.sendManifest(link);
        const failures = await this.sendFiles(link, held, where);
        if (failures > 0) throw new RelayError(this.firstFailure.get(link.name) ?? ErrorCode.IO, `${failures} file(s) failed there`);
        const timeout = Math.max(this.ask.replyTimeoutMs, this.ask.timeoutMs);
        const s = await askNode(link, 'stage', { release: release.name, id, files: this.spec.files.length }, { ...this.ask, replyTimeoutMs: timeout });
        this.step(link, 'staged', { files: s.files, bytes: s.bytes, linked: s.linked });
        return { ok: true };
      } catch (err) {
        const e = toRelayError(err);
        if (e.code !== ErrorCode.NO_RELEASE || round >= STAGE_ROUNDS || this.ctx.signal?.aborted) return { ok: false, error: e };
        this.ctx.logger.warn({ receiver: link.name, release: release.name, id, round }, 'the node forgot the release being staged: staging it again');
      }
    }
  }

  private readonly firstFailure = new Map<string, ErrorCode>();
  /** Targets the release may have begun on: any part taken, or a failure other than an outright refusal of the first. */
  private readonly touched = new Set<string>();

  /** The manifest in parts; returns the indices of the entries the node already holds (hard-linked there). */
  private async sendManifest(link: Link): Promise<{ held: Set<number>; where: Where }> {
    const held = new Set<number>();
    let where: Where = {};
    const total = this.spec.files.length;
    for (let offset = 0; offset < total || offset === 0;) {
      let end = offset;
      let size = 0;
      while (end < total && end - offset < MAX_MANIFEST_PART && size < MANIFEST_PART_BYTES) size += 3 * this.spec.files.at(end++)!.name.length + 128;
      await this.manifest.ready(end);
      const reply = await askNode(link, 'release', { release: this.release.name, id: this.id, offset, files: this.manifest.entries.slice(offset, end) }, this.ask).catch((err: unknown) => {
        // Whatever else went wrong (a lost reply, a full disk), the node may hold a staging of it now.
        if (!(offset === 0 && err instanceof RelayError && REFUSED_AT_BEGIN.has(err.code))) this.touched.add(link.name);
        throw err;
      });
      this.touched.add(link.name);
      for (const i of reply.held) if (offset + i < end) held.add(offset + i);
      if (offset === 0) where = { ...(reply.path ? { path: reply.path } : {}), ...(reply.node ? { node: reply.node } : {}), ...(reply.displayPath ? { displayPath: reply.displayPath } : {}) };
      offset = end;
      if (end === 0) break;
    }
    return { held, where };
  }

  /**
   * The files the node does not hold, under the release's staging names; the held ones are confirmed by
   * the manifest reply. A file the node refuses with NO_RELEASE (it restarted and forgot the release) is
   * not a failure of the step yet: stageOn begins the release there again.
   */
  private async sendFiles(link: Link, held: Set<number>, where: Where): Promise<number> {
    const prefix = `${this.release.name}/.releases/${this.id}/`;
    const mine = this.confirmedOn(link);
    const send: number[] = [];
    this.manifest.entries.forEach((e, i) => {
      if (!held.has(i)) return send.push(i);
      if (mine.has(e.name)) return;
      mine.add(e.name);
      // Where a sent file's confirmation would say it is: the node's staging folder, as the host sees it.
      const at = {
        path: where.path ? path.posix.join(where.path, e.name) : `${prefix}${e.name}`,
        ...(where.node ? { node: where.node } : {}),
        ...(where.displayPath ? { displayPath: path.posix.join(where.displayPath, e.name) } : {}),
      };
      this.emit({ type: 'received', target: link.name, name: e.name, size: e.size, sha256: e.sha256, ...at, unchanged: true, bytesSent: 0, resumedFrom: 0, elapsedMs: 0 });
    });
    if (send.length === 0) return 0;
    const files = releaseFiles({ length: send.length, at: (i) => this.spec.files.at(send[i]!) }, (name) => `${prefix}${name}`);
    let failures = 0;
    let forgotten = 0;
    this.firstFailure.delete(link.name);
    await runJob({ files, targets: [link], transfer: this.spec.transfer, open: this.spec.open }, this.ctx, (e) => {
      if (e.type === 'queued' || e.type === 'done') return;
      // The step speaks of the release's names; the path still says where the file is staged.
      const named = 'name' in e && typeof e.name === 'string' && e.name.startsWith(prefix) ? { ...e, name: e.name.slice(prefix.length) } as JobEvent : e;
      if (named.type === 'received') {
        if (mine.has(named.name)) return;
        mine.add(named.name);
      }
      if (named.type === 'failed') {
        if (named.code === ErrorCode.NO_RELEASE) return void forgotten++;
        failures++;
        this.fileFailures++;
        if (!this.firstFailure.has(link.name)) this.firstFailure.set(link.name, named.code);
      }
      this.emit(named);
    });
    if (failures === 0 && forgotten > 0) throw new RelayError(ErrorCode.NO_RELEASE, `${link.name} forgot release ${this.id} while ${forgotten} file(s) were on their way`);
    return failures;
  }

  private readonly confirmedBy = new Map<string, Set<string>>();

  private confirmedOn(link: Link): Set<string> {
    let set = this.confirmedBy.get(link.name);
    if (!set) this.confirmedBy.set(link.name, (set = new Set()));
    return set;
  }

  private get confirmed(): number {
    let n = 0;
    for (const set of this.confirmedBy.values()) n += set.size;
    return n;
  }

  private async switchAll(): Promise<void> {
    const { release, id, spec } = this;
    const then = spec.then;
    const timeout = actionReplyMs(this.ask, then);
    const results = await Promise.all(spec.targets.map(async (link) => {
      try {
        const r = await switchOn(link, { release: release.name, id, keep: release.keep, ...(then ? { then } : {}) }, this.ask, timeout);
        this.step(link, 'switched', { previous: r.previous });
        if (r.action && !(await runAction(link, async () => r.action!, then!, this.emit))) this.stepFailures++;
        return { link, previous: r.previous, ok: true as const };
      } catch (err) {
        const e = toRelayError(err);
        this.step(link, 'failed', { code: e.code, message: `switch failed: ${e.message}` });
        return { link, ok: false as const };
      }
    }));
    const switched = results.filter((r) => r.ok);
    if (switched.length === results.length) return;
    const names = switched.map((r) => r.link.name);
    this.ctx.logger.warn({ release: release.name, id, switched: names }, 'switch failed on some nodes');
    if (!release.rollbackOnFailure) {
      if (names.length) for (const r of switched) this.step(r.link, 'failed', { code: ErrorCode.IO, message: `now on ${id} while other nodes are not (switched: ${names.join(', ')}; --rollback-on-failure switches them back)` });
      return;
    }
    await Promise.all(switched.map(async ({ link, previous }) => {
      if (!previous) return this.step(link, 'failed', { code: ErrorCode.NO_RELEASE, message: `now on ${id}: there is no previous release to switch back to` });
      try {
        const r = await once(link, this.ask, () => link.request('rollback', { release: release.name, to: previous }, this.ask.replyTimeoutMs));
        this.step(link, 'rolled-back', { previous: r.previous }, r.current);
      } catch (err) {
        const e = toRelayError(err);
        this.step(link, 'failed', { code: e.code, message: `rollback to ${previous} failed: still on ${id}: ${e.message}` });
      }
    }));
  }

  private step(link: Link, phase: Extract<JobEvent, { type: 'release' }>['phase'], detail: Omit<Extract<JobEvent, { type: 'release' }>, 'type' | 'target' | 'release' | 'id' | 'phase'>, id = this.id): void {
    if (phase === 'failed') this.stepFailures++;
    this.emit({ type: 'release', target: link.name, release: this.release.name, id, phase, ...detail });
  }

  private fail(link: Link, name: string, size: number, e: RelayError): void {
    this.fileFailures++;
    this.emit({ type: 'failed', target: link.name, name, size, code: e.code, message: e.message });
  }

  private done(bytes: number): boolean {
    const ok = this.fileFailures === 0 && this.stepFailures === 0 && this.confirmed === this.spec.files.length * this.spec.targets.length;
    this.emit({ type: 'done', ok, confirmed: this.confirmed, failed: this.fileFailures + this.stepFailures, bytes, elapsedMs: Date.now() - this.started, skipped: (this.spec.skipped ?? []).length });
    this.ctx.logger.info({ release: this.release.name, id: this.id, ok }, 'release finished');
    return ok;
  }
}
