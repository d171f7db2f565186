/**
 * What makes a send a deploy (`--release`, `--then`), checked once for the agent and for --direct, and
 * the names a release's files get: relative to the one folder sent (`relay send build/site --release www`
 * puts build/site/index.html at www/current/index.html).
 */
import {
  ACTION_NAME, checkReleaseName, createError, DEFAULT_KEEP, elide, ErrorCode, MAX_ACTION_TIMEOUT_MS, RELEASE_ID, RelayError, type ThenSpec,
} from '@relayer/common';
import path from 'node:path';
import type { SourceList } from './file-list.js';
import { releaseFiles } from './manifest.js';

export interface ReleaseSpec {
  /** The release's folder on each node, relative to its --dir (`www`: `<dir>/www/current`). */
  name: string;
  /** Releases kept after the switch (the current and the previous one always are). Default 5. */
  keep: number;
  /** When a switch fails after other targets switched: point those back at their previous release. */
  rollbackOnFailure: boolean;
}

export const DEPLOY_DEFAULTS = {
  keep: DEFAULT_KEEP,
  /** --action-timeout: 5 minutes. */
  actionTimeoutMs: 5 * 60_000,
} as const;

export const MAX_KEEP = 1000;

/** A release name as the receivers take it; throws USAGE naming the rule. */
export function checkRelease(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw createError(ErrorCode.USAGE, '--release needs a name, e.g. www');
  try {
    checkReleaseName(name);
  } catch (err) {
    throw createError(ErrorCode.USAGE, `bad release name: ${(err as RelayError).message}`);
  }
  return name;
}

/** Checks --release/--keep/--rollback-on-failure and --then/--action-timeout as they arrive (from argv or the control socket). */
export function checkDeploy(release: Partial<ReleaseSpec> | undefined, then: Partial<ThenSpec> | undefined): { release?: ReleaseSpec; then?: ThenSpec } {
  const out: { release?: ReleaseSpec; then?: ThenSpec } = {};
  if (release !== undefined) {
    const keep = release.keep ?? DEPLOY_DEFAULTS.keep;
    if (!Number.isInteger(keep) || keep < 1 || keep > MAX_KEEP) throw createError(ErrorCode.USAGE, `--keep must be 1 to ${MAX_KEEP}, got ${elide(String(keep))}`);
    out.release = { name: checkRelease(release.name), keep, rollbackOnFailure: release.rollbackOnFailure === true };
  }
  if (then !== undefined) out.then = checkThen(then);
  return out;
}

export function checkReleaseId(id: string): string {
  if (!RELEASE_ID.test(id)) throw createError(ErrorCode.USAGE, `--release needs a release id as \`relay releases\` lists them (e.g. 20261204T031501123Z-a1b2c3), got ${elide(id)}`);
  return id;
}

export function checkThen(then: Partial<ThenSpec>): ThenSpec {
  if (typeof then.action !== 'string' || !ACTION_NAME.test(then.action)) {
    throw createError(ErrorCode.USAGE, `--then needs the name of an action (a file in the receivers' --action-dir: letters, digits, '.', '_', '-'), got ${elide(String(then.action))}`);
  }
  const timeoutMs = then.timeoutMs ?? DEPLOY_DEFAULTS.actionTimeoutMs;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_ACTION_TIMEOUT_MS) throw createError(ErrorCode.USAGE, '--action-timeout must be between 1ms and 24h');
  return { action: then.action, timeoutMs };
}

/**
 * The files under their names in the release: a single folder's contents at the release's top (its own
 * name dropped), otherwise the names a plain send gives them.
 */
export function namesInRelease(files: SourceList, paths: string[]): SourceList {
  if (paths.length !== 1) return files;
  // A folder's files are all named `<its base name>/…`; a single file is named its base name.
  const prefix = `${path.basename(path.resolve(paths[0]!))}/`;
  return releaseFiles(files, (name) => (name.startsWith(prefix) ? name.slice(prefix.length) : name));
}

export function refuseAsWithRelease(as: string | undefined, release: ReleaseSpec | undefined): void {
  if (as !== undefined && release !== undefined) throw new RelayError(ErrorCode.USAGE, '--as and --release do not go together: a release\'s files are named inside the release');
}
