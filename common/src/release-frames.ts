/**
 * The release and node-action part of the protocol (see frames.ts for the rest).
 *
 * A release is staged, then switched. The sender sends the manifest (names, sizes, modes, sha256) in
 * parts; the receiver hard-links what its current release already holds and says which entries those are;
 * the other files travel as any file does, under `<release>/.releases/<id>/<name>` (a name the receiver
 * takes only while that release is being staged); `stage` checks that every entry is there and verified
 * and makes the release durable; `switch` points `<release>/current` at it in one rename, then runs the
 * action the sender named, if any. Actions are the receiver's executables: a sender only names one.
 */
import { createError, ErrorCode } from './errors.js';
import { MAX_NAME_LENGTH } from './frames.js';
import { checkName, quoteName } from './path-guard.js';
import { isObject, isSha256, isSize, isText } from './validate.js';

/** Entries of the manifest in one `release` frame (the frame stays far under the receiver's message limit). */
export const MAX_MANIFEST_PART = 1024;
/** Most files in one release. */
export const MAX_RELEASE_FILES = 1_000_000;
/** Releases kept by default after a switch (the current and the previous one are always kept). */
export const DEFAULT_KEEP = 5;
/** Longest action output tail a confirmation carries, in characters. */
export const MAX_ACTION_OUTPUT = 8192;
/** Longest --action-timeout a sender may ask for: one day. */
export const MAX_ACTION_TIMEOUT_MS = 86_400_000;

/** A release id: UTC time to the millisecond and 6 hex digits, so ids sort by time and never collide. */
export const RELEASE_ID = /^\d{8}T\d{9}Z-[0-9a-f]{6}$/;
/** An action's name: a file name in the receiver's --action-dir. */
export const ACTION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The folder beside `current` that holds the releases. */
export const RELEASES_DIR = '.releases';

/**
 * A release's name: a relative path as any file name (path-guard's rules), and no segment starting with
 * '.' (`.releases` is the releases' own folder). Returns its segments; throws BAD_NAME.
 */
export function checkReleaseName(release: string): string[] {
  const segments = checkName(release);
  if (segments.some((s) => s.startsWith('.'))) throw createError(ErrorCode.BAD_NAME, `refused release name ${quoteName(release)}: a segment starts with "."`);
  return segments;
}

/** A new release id (sortable by time, unique). */
export function newReleaseId(now = new Date(), random = Math.floor(Math.random() * 0x1000000)): string {
  const t = now.toISOString().replace(/[-:.]/g, ''); // 20261203T213012345Z
  return `${t}-${random.toString(16).padStart(6, '0')}`;
}

/** One file of a release. */
export interface ManifestEntry {
  /** Relative '/'-separated name inside the release. */
  name: string;
  size: number;
  /** Permission bits the file gets (0o644 or 0o755: only whether it is executable travels). */
  mode: number;
  sha256: string;
}

/** The mode a file of `mode` has in a manifest: executable by anyone or not (0o755 / 0o644), nothing else. */
export function entryMode(mode: number | bigint): 0o755 | 0o644 {
  return Number(mode) & 0o111 ? 0o755 : 0o644;
}

/** Sender → receiver: part of a release's manifest, from entry `offset` on. The first part (offset 0) begins the release. */
export interface ReleaseFrame {
  release: string;
  id: string;
  offset: number;
  files: ManifestEntry[];
}

/** Indices (within the frame's files) of entries the receiver already holds, hard-linked from its current release. */
export interface ReleaseReply {
  held: number[];
  /**
   * The release's staging folder on the receiver (absolute), its node and the folder as the host sees it:
   * the confirmations of held files (never sent) say where they are as a sent file's would.
   */
  path?: string;
  node?: string;
  displayPath?: string;
}

/** Sender → receiver: every one of the manifest's `files` entries has been sent; verify them and make the release durable. */
export interface StageFrame {
  release: string;
  id: string;
  files: number;
}

export interface StageReply {
  files: number;
  bytes: number;
  /** Files hard-linked from the current release rather than sent. */
  linked: number;
}

/** What the node should run once the switch (or a plain send's files) is done. */
export interface ThenSpec {
  action: string;
  timeoutMs: number;
}

/** Sender → receiver: point `<release>/current` at the staged release `id`; then keep `keep` releases and run `then`. */
export interface SwitchFrame {
  release: string;
  id: string;
  keep: number;
  then?: ThenSpec;
}

export interface SwitchReply {
  /** The release `current` pointed at before (what a rollback goes back to), null when there was none. */
  previous: string | null;
  /** Releases removed by --keep. */
  removed: string[];
  action?: ActionResult;
}

/** Sender → receiver: point `current` back at `to` (default: the release before the current one). */
export interface RollbackFrame {
  release: string;
  to?: string;
  then?: ThenSpec;
}

export interface RollbackReply {
  previous: string | null;
  current: string;
  action?: ActionResult;
}

/** Sender → receiver: remove the staged (never switched to) release `id`. */
export interface DiscardFrame {
  release: string;
  id: string;
}

export interface ListReleasesFrame {
  release: string;
}

export interface ReleaseInfo {
  id: string;
  /** When it was staged, ms since the epoch. */
  stagedAt: number;
  files: number;
  bytes: number;
  current: boolean;
}

export interface ListReleasesReply {
  current: string | null;
  /** Oldest first. */
  releases: ReleaseInfo[];
}

/** Sender → receiver: does this node define the action? (asked before any byte is sent) */
export interface ActionCheckFrame {
  action: string;
}

/**
 * Sender → receiver: run an action after a plain send; `files` are the names sent (the last MAX_RUN_FILES
 * of them; the receiver checks each is published), `count` how many the send confirmed there in all.
 */
export interface RunFrame {
  then: ThenSpec;
  files: string[];
  /** Absent: files.length (a sender before this field). */
  count?: number;
}

export interface RunReply {
  action: ActionResult;
}

/** How a node action ended; it travels with the node's confirmation. */
export interface ActionResult {
  name: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** The tail of its output, control characters made harmless. */
  output: string;
  ok: boolean;
}

export const MAX_RUN_FILES = 1024;

function isRelease(v: unknown): v is string {
  return isText(v, 1024) && v.length > 0;
}
function isReleaseId(v: unknown): v is string {
  return typeof v === 'string' && RELEASE_ID.test(v);
}
function isActionName(v: unknown): v is string {
  return typeof v === 'string' && ACTION_NAME.test(v);
}
function isThen(v: unknown): v is ThenSpec {
  return isObject(v) && isActionName(v.action) && isSize(v.timeoutMs) && v.timeoutMs > 0 && v.timeoutMs <= MAX_ACTION_TIMEOUT_MS;
}
function isEntry(v: unknown): v is ManifestEntry {
  return isObject(v) && isText(v.name, MAX_NAME_LENGTH) && isSize(v.size) && (v.mode === 0o644 || v.mode === 0o755) && isSha256(v.sha256);
}

export function isReleaseFrame(v: unknown): v is ReleaseFrame {
  return isObject(v) && isRelease(v.release) && isReleaseId(v.id) && isSize(v.offset) && Array.isArray(v.files)
    && v.files.length <= MAX_MANIFEST_PART && v.offset + v.files.length <= MAX_RELEASE_FILES && v.files.every(isEntry);
}
export function isReleaseReply(v: unknown): v is ReleaseReply {
  return isObject(v) && Array.isArray(v.held) && v.held.length <= MAX_MANIFEST_PART && v.held.every((i) => isSize(i) && i < MAX_MANIFEST_PART)
    && (v.path === undefined || isText(v.path, 4096)) && (v.node === undefined || isText(v.node, 256)) && (v.displayPath === undefined || isText(v.displayPath, 4096));
}
export function isStageFrame(v: unknown): v is StageFrame {
  return isObject(v) && isRelease(v.release) && isReleaseId(v.id) && isSize(v.files) && v.files <= MAX_RELEASE_FILES;
}
export function isStageReply(v: unknown): v is StageReply {
  return isObject(v) && isSize(v.files) && isSize(v.bytes) && isSize(v.linked);
}
export function isSwitchFrame(v: unknown): v is SwitchFrame {
  return isObject(v) && isRelease(v.release) && isReleaseId(v.id) && isSize(v.keep) && v.keep >= 1 && v.keep <= 1000
    && (v.then === undefined || isThen(v.then));
}
function isActionResult(v: unknown): v is ActionResult {
  return isObject(v) && isActionName(v.name) && (v.exitCode === null || (typeof v.exitCode === 'number' && Number.isInteger(v.exitCode)))
    && (v.signal === null || isText(v.signal, 32)) && typeof v.timedOut === 'boolean' && isSize(v.durationMs)
    && isText(v.output, MAX_ACTION_OUTPUT) && typeof v.ok === 'boolean';
}
function isOptionalAction(v: unknown): boolean {
  return v === undefined || isActionResult(v);
}
export function isSwitchReply(v: unknown): v is SwitchReply {
  return isObject(v) && (v.previous === null || isReleaseId(v.previous)) && Array.isArray(v.removed) && v.removed.length <= 10_000
    && v.removed.every(isReleaseId) && isOptionalAction(v.action);
}
export function isRollbackFrame(v: unknown): v is RollbackFrame {
  return isObject(v) && isRelease(v.release) && (v.to === undefined || isReleaseId(v.to)) && (v.then === undefined || isThen(v.then));
}
export function isRollbackReply(v: unknown): v is RollbackReply {
  return isObject(v) && (v.previous === null || isReleaseId(v.previous)) && isReleaseId(v.current) && isOptionalAction(v.action);
}
export function isDiscardFrame(v: unknown): v is DiscardFrame {
  return isObject(v) && isRelease(v.release) && isReleaseId(v.id);
}
export function isEmptyReply(v: unknown): v is Record<string, never> {
  return isObject(v) && Object.keys(v).length === 0;
}
export function isListReleasesFrame(v: unknown): v is ListReleasesFrame {
  return isObject(v) && isRelease(v.release);
}
function isReleaseInfo(v: unknown): v is ReleaseInfo {
  return isObject(v) && isReleaseId(v.id) && isSize(v.stagedAt) && isSize(v.files) && isSize(v.bytes) && typeof v.current === 'boolean';
}
export function isListReleasesReply(v: unknown): v is ListReleasesReply {
  return isObject(v) && (v.current === null || isReleaseId(v.current)) && Array.isArray(v.releases) && v.releases.length <= 10_000
    && v.releases.every(isReleaseInfo);
}
export function isActionCheckFrame(v: unknown): v is ActionCheckFrame {
  return isObject(v) && isActionName(v.action);
}
export function isRunFrame(v: unknown): v is RunFrame {
  return isObject(v) && isThen(v.then) && Array.isArray(v.files) && v.files.length <= MAX_RUN_FILES
    && v.files.every((f) => isText(f, MAX_NAME_LENGTH) && f.length > 0)
    && (v.count === undefined || (isSize(v.count) && v.count >= v.files.length));
}
export function isRunReply(v: unknown): v is RunReply {
  return isObject(v) && isActionResult(v.action);
}
