/**
 * The control socket's trust boundary. Node cannot read a Unix socket peer's credentials (no
 * SO_PEERCRED), so trust rests on the file system: the agent creates its socket in a folder only it
 * (and, with --socket-group, one group) can enter, never removes anything but its own stale socket, and
 * `relay` talks only to a socket owned by root, by itself or by the named agent user, in a folder that
 * others cannot write to.
 */
import { lstatSync, readFileSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, unlink } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createError, ErrorCode, quoted, RelayError } from '@relayer/common';

export const SOCKET_NAME = 'relay-sender.sock';

const uid = (): number => process.getuid?.() ?? -1;
const gid = (): number => process.getgid?.() ?? -1;
const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`;

/**
 * The private default: `$XDG_RUNTIME_DIR/relay/`, else `/run/relay/` for root, else `<tmp>/relay-<uid>/`
 * (created 0700 by the agent and checked, so another user cannot take the name first). The CLI passes
 * its environment in; a library caller that passes none gets the same answer as without XDG_RUNTIME_DIR.
 */
export function defaultSocketDir(env: { XDG_RUNTIME_DIR?: string } = {}): string {
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'relay');
  if (uid() === 0) return '/run/relay';
  return path.join(os.tmpdir(), `relay-${uid()}`);
}

export function defaultSocketPath(env: { XDG_RUNTIME_DIR?: string } = {}): string {
  return path.join(defaultSocketDir(env), SOCKET_NAME);
}

/** A numeric id, or a name looked up in /etc/passwd (field 2) or /etc/group (field 2). */
function lookupId(file: '/etc/passwd' | '/etc/group', nameOrId: string): number {
  if (/^\d+$/.test(nameOrId)) return Number(nameOrId);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch { /* no such database: only numeric ids work */ }
  const line = text.split('\n').find((l) => l.split(':')[0] === nameOrId);
  if (!line) throw createError(ErrorCode.USAGE, `no ${file === '/etc/passwd' ? 'user' : 'group'} named ${quoted(nameOrId)} (in ${file}); give a numeric id`);
  return Number(line.split(':')[2]);
}
export const lookupUid = (name: string): number => lookupId('/etc/passwd', name);
export const lookupGid = (name: string): number => lookupId('/etc/group', name);

export interface PrepareSocketOptions {
  /** Group allowed to use the socket (name or gid): the folder becomes 0750 and the socket 0660 in that group. */
  group?: string;
}

/**
 * Makes the socket's folder safe to listen in and clears a stale socket. Refuses (USAGE) a symlinked
 * folder or socket path, an existing file that is not a socket, a live agent, and a folder others can
 * write to. Creates a missing folder 0700 (0750 with a group).
 */
export async function prepareSocketPath(socketPath: string, opts: PrepareSocketOptions = {}): Promise<void> {
  const dir = path.dirname(socketPath);
  const group = opts.group === undefined ? undefined : lookupGid(opts.group);
  let st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw accessError(err, socketPath, dir);
  });
  if (!st) {
    await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      throw accessError(err, socketPath, path.dirname(dir));
    });
    await chmod(dir, group === undefined ? 0o700 : 0o750);
    if (group !== undefined) await chown(dir, uid(), group);
    st = await lstat(dir);
  }
  if (st.isSymbolicLink()) throw createError(ErrorCode.USAGE, `the control socket's folder ${dir} is a symlink; refusing it (give the real path with --socket)`);
  if (!st.isDirectory()) throw createError(ErrorCode.USAGE, `the control socket's folder ${dir} is not a directory`);
  if (st.uid !== uid() && st.uid !== 0) {
    throw createError(ErrorCode.USAGE, `the control socket's folder ${dir} belongs to uid ${st.uid}, not to this agent (uid ${uid()}) or root; another user could replace the socket`);
  }
  if ((st.mode & 0o002) && !(st.mode & 0o1000)) {
    throw createError(ErrorCode.USAGE, `the control socket's folder ${dir} is writable by everyone (mode ${octal(st.mode)}); use a private folder (e.g. chmod 0750 ${dir})`);
  }
  if (dir === defaultSocketDir() && st.uid === uid() && (st.mode & 0o022)) {
    throw createError(ErrorCode.USAGE, `the default socket folder ${dir} is writable by group or others (mode ${octal(st.mode)}); chmod 0700 ${dir}`);
  }
  await clearStaleSocket(socketPath);
}

/** Removes our own dead socket; refuses anything else that holds the name. */
async function clearStaleSocket(socketPath: string): Promise<void> {
  const st = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!st) return;
  if (st.isSymbolicLink()) throw createError(ErrorCode.USAGE, `${socketPath} is a symlink; refusing to use or remove it`);
  if (!st.isSocket()) throw createError(ErrorCode.USAGE, `${socketPath} exists and is not a socket; not removing it (choose another --socket or remove it yourself)`);
  const probe = await new Promise<string>((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve('alive');
    });
    c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  if (probe === 'alive') throw createError(ErrorCode.USAGE, `another agent is already listening on ${socketPath}`);
  if (probe !== 'ECONNREFUSED') throw createError(ErrorCode.USAGE, `${socketPath} exists and cannot be probed (${probe}); not removing it`);
  await unlink(socketPath);
}

/** After listen: the socket's mode and group. */
export async function secureSocket(socketPath: string, opts: PrepareSocketOptions = {}): Promise<void> {
  const group = opts.group === undefined ? undefined : lookupGid(opts.group);
  if (group !== undefined) await chown(socketPath, uid(), group);
  await chmod(socketPath, 0o660);
}

/** A one-line explanation of EACCES/EPERM/EROFS on the socket or its folder, naming the path and the fix. */
export function accessError(err: NodeJS.ErrnoException, socketPath: string, dir = path.dirname(socketPath)): Error {
  if (err.code !== 'EACCES' && err.code !== 'EPERM' && err.code !== 'EROFS') return err;
  let owner = '';
  const st = readStat(dir);
  if (st) owner = ` (${dir} is owned by uid ${st.uid} gid ${st.gid}, mode ${octal(st.mode)})`;
  return createError(ErrorCode.USAGE,
    `cannot create the control socket ${socketPath}: permission denied${owner}; this agent runs as uid ${uid()} gid ${gid()}. `
    + `Make the folder writable for it (e.g. install -d -o ${uid()} -g ${gid()} -m 0750 ${dir}) or choose another --socket`);
}

function readStat(p: string): { uid: number; gid: number; mode: number } | undefined {
  // Synchronous on purpose: only on the error path, to build one message.
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/** Who `relay` trusts to own the socket and its folder: root, itself, and the named agent user. */
export function trustedOwners(agentUser: string | undefined): number[] {
  const owners = new Set([0, uid()]);
  if (agentUser) owners.add(lookupUid(agentUser));
  return [...owners];
}

/** Thrown by `relay` when the socket is there but must not be trusted or cannot be used. */
export class SocketTrustError extends RelayError {
  constructor(message: string) {
    super(ErrorCode.UNREACHABLE, message);
  }
}

/**
 * Checks, before `relay` connects, that the socket is one the agent made: a socket (not a symlink), owned
 * by a trusted user, in a folder that others cannot write to. Trusted: root, the caller, the named agent
 * user, and the folder's owner when nobody else could have made that folder (its parent is not writable
 * by everyone, unlike /tmp): e.g. /run/relay made by root for the agent's uid, used by a Jenkins uid that
 * is only in the socket's group.
 */
export async function checkSocketTrust(socketPath: string, owners: readonly number[]): Promise<void> {
  const hint = ' (if the agent runs as another user, set RELAY_AGENT_USER to that user)';
  const dir = path.dirname(socketPath);
  const trusted = new Set(owners);
  const d = await lstat(dir).catch(() => undefined);
  if (d) {
    if (d.isSymbolicLink()) throw new SocketTrustError(`not trusting ${socketPath}: its folder is a symlink`);
    if ((d.mode & 0o002) && !(d.mode & 0o1000)) throw new SocketTrustError(`not trusting ${socketPath}: its folder ${dir} is writable by everyone (mode ${octal(d.mode)})`);
    const parent = await lstat(path.dirname(dir)).catch(() => undefined);
    const madeByAnOwner = !(d.mode & 0o002) && parent !== undefined && !(parent.mode & 0o002);
    if (madeByAnOwner) trusted.add(d.uid);
    if (!trusted.has(d.uid)) throw new SocketTrustError(`not trusting ${socketPath}: its folder ${dir} belongs to uid ${d.uid}, not to root, you or the agent's user${hint}`);
  }
  const s = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => err);
  if (s instanceof Error) return; // ENOENT / EACCES: connecting reports it with the right words
  if (s.isSymbolicLink()) throw new SocketTrustError(`not trusting ${socketPath}: it is a symlink (point --socket at the real socket)`);
  if (!s.isSocket()) throw new SocketTrustError(`not trusting ${socketPath}: it is not a socket`);
  if (!trusted.has(s.uid)) throw new SocketTrustError(`not trusting ${socketPath}: it belongs to uid ${s.uid}, not to root, you, the agent's user or the folder's owner${hint}; another user may be impersonating the agent`);
}

/** What `relay` says when connecting is refused with EACCES: who may use the socket and how to get access. */
export async function permissionHint(socketPath: string): Promise<string> {
  const s = await lstat(socketPath).catch(() => undefined);
  const groups = process.getgroups?.() ?? [];
  const who = `you are uid ${uid()} with groups ${groups.join(',') || 'none'}`;
  if (!s) return `permission denied: cannot enter the folder of ${socketPath} (${who}); ask for membership of the folder's group (the agent's --socket-group)`;
  return `permission denied: ${socketPath} is uid ${s.uid} gid ${s.gid} mode ${octal(s.mode)} and ${who}; `
    + `join group ${s.gid} (start the agent with --socket-group <group> so its socket and folder belong to that group), or run relay as uid ${s.uid}`;
}
