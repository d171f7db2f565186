/**
 * The machine-level fixtures some scenarios need, each undone by the scenario's Cleanup: a small tmpfs, an
 * ext4 loop device, a blkio cgroup with a write limit, and two network namespaces joined by a veth pair.
 * All names start with "rlyf" so they are recognisably the suite's own.
 */
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Cleanup, delay, isRoot, sh, shOk } from './harness.js';

/** Why a root-only fixture cannot be made here, or undefined when it can. */
export function whyNotRoot(): string | undefined {
  return isRoot() ? undefined : `needs root (uid ${process.getuid?.()}): mounts, namespaces and cgroups cannot be made`;
}

async function umount(dir: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const r = await sh('umount', [dir]);
    if (r.code === 0) return;
    await delay(250);
  }
  await shOk('umount', ['-l', dir]);
}

/** Mounts a tmpfs of `size` (e.g. "64m") on a new folder inside `parent`; unmounted at cleanup. */
export async function mountTmpfs(cleanup: Cleanup, parent: string, size: string): Promise<string> {
  const mnt = path.join(parent, 'tmpfs');
  await mkdir(mnt);
  await shOk('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'rlyf-tmpfs', mnt]);
  cleanup.add(`umount ${mnt}`, () => umount(mnt));
  return mnt;
}

export interface LoopDisk {
  device: string;
  /** major:minor of the device, for blkio limits. */
  majMin: string;
  mnt: string;
}

/** An ext4 image file on a loop device, mounted in `parent`; unmounted and detached at cleanup. */
export async function mountLoopExt4(cleanup: Cleanup, parent: string, sizeMb: number): Promise<LoopDisk> {
  const img = path.join(parent, 'disk.img');
  await shOk('truncate', ['-s', `${sizeMb}M`, img]);
  await shOk('mkfs.ext4', ['-q', '-F', img]);
  const device = (await shOk('losetup', ['-f', '--show', img])).trim();
  cleanup.add(`losetup -d ${device}`, () => shOk('losetup', ['-d', device]));
  const mnt = path.join(parent, 'loop');
  await mkdir(mnt);
  await shOk('mount', [device, mnt]);
  cleanup.add(`umount ${mnt}`, () => umount(mnt));
  const majMin = (await shOk('lsblk', ['-ndo', 'MAJ:MIN', device])).trim();
  return { device, majMin, mnt };
}

export interface WriteLimit {
  /** The cgroup's cgroup.procs: write a pid there to put a process under the limit. */
  procs: string;
  /** Bytes this cgroup has written to the device so far (from the throttle's own accounting). */
  writtenBytes: () => Promise<number>;
  mechanism: string;
}

/**
 * A cgroup whose writes to one block device are limited to `bps`. cgroup v2 io.max where the io controller
 * is available, else cgroup v1 blkio.throttle.write_bps_device. Throws when neither exists.
 */
export async function writeLimitCgroup(cleanup: Cleanup, majMin: string, bps: number): Promise<WriteLimit> {
  const name = `rlyf-${process.pid}-${Date.now()}`;
  const v2 = '/sys/fs/cgroup';
  const v1 = '/sys/fs/cgroup/blkio';
  const { readFile } = await import('node:fs/promises');
  const v2Controllers = await readFile(path.join(v2, 'cgroup.controllers'), 'utf8').catch(() => '');
  if (/\bio\b/.test(v2Controllers)) {
    const dir = path.join(v2, name);
    await mkdir(dir);
    cleanup.add(`rmdir ${dir}`, () => rmCgroup(dir));
    await writeFile(path.join(dir, 'io.max'), `${majMin} wbps=${bps}`);
    return {
      procs: path.join(dir, 'cgroup.procs'),
      mechanism: `cgroup v2 io.max wbps=${bps}`,
      writtenBytes: async () => Number(/wbytes=(\d+)/.exec((await readFile(path.join(dir, 'io.stat'), 'utf8')).split('\n').find((l) => l.startsWith(majMin)) ?? '')?.[1] ?? 0),
    };
  }
  const limitFile = path.join(v1, 'blkio.throttle.write_bps_device');
  await readFile(limitFile, 'utf8'); // throws where cgroup v1 blkio is not mounted
  const dir = path.join(v1, name);
  await mkdir(dir);
  cleanup.add(`rmdir ${dir}`, () => rmCgroup(dir));
  await writeFile(path.join(dir, 'blkio.throttle.write_bps_device'), `${majMin} ${bps}`);
  return {
    procs: path.join(dir, 'cgroup.procs'),
    mechanism: `cgroup v1 blkio.throttle.write_bps_device ${bps} B/s`,
    writtenBytes: async () => {
      const text = await readFile(path.join(dir, 'blkio.throttle.io_service_bytes'), 'utf8');
      return Number(new RegExp(`^${majMin} Write (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    },
  };
}

/** A cgroup can be removed once its processes are gone; they may take a moment to be reaped. */
async function rmCgroup(dir: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      await delay(250);
    }
  }
  await rmdir(dir);
}

export interface TwoHosts {
  receiverNs: string;
  senderNs: string;
  receiverIf: string;
  senderIf: string;
  receiverAddr: string;
  senderAddr: string;
  prefix: number;
}

/**
 * Two network namespaces joined by a veth pair, each end addressed inside its own namespace only (the
 * root namespace is never touched). Removed at cleanup (deleting a namespace deletes its veth end).
 */
export async function twoHosts(cleanup: Cleanup): Promise<TwoHosts> {
  const tag = (process.pid % 10000).toString();
  const h: TwoHosts = {
    receiverNs: `rlyf-r${tag}`, senderNs: `rlyf-s${tag}`, receiverIf: `rlyfr${tag}`, senderIf: `rlyfs${tag}`,
    receiverAddr: '10.232.0.2', senderAddr: '10.232.0.1', prefix: 24,
  };
  for (const ns of [h.receiverNs, h.senderNs]) {
    await sh('ip', ['netns', 'del', ns]); // a leftover of a killed run
    await shOk('ip', ['netns', 'add', ns]);
    cleanup.add(`ip netns del ${ns}`, () => shOk('ip', ['netns', 'del', ns]));
    await shOk('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  await shOk('ip', ['link', 'add', h.senderIf, 'netns', h.senderNs, 'type', 'veth', 'peer', 'name', h.receiverIf, 'netns', h.receiverNs]);
  await shOk('ip', ['-n', h.senderNs, 'addr', 'add', `${h.senderAddr}/${h.prefix}`, 'dev', h.senderIf]);
  await shOk('ip', ['-n', h.receiverNs, 'addr', 'add', `${h.receiverAddr}/${h.prefix}`, 'dev', h.receiverIf]);
  await shOk('ip', ['-n', h.senderNs, 'link', 'set', h.senderIf, 'up']);
  await shOk('ip', ['-n', h.receiverNs, 'link', 'set', h.receiverIf, 'up']);
  return h;
}

/** A tbf rate limit on both ends of the link. */
export async function shapeLink(h: TwoHosts, rate: string): Promise<void> {
  for (const [ns, dev] of [[h.senderNs, h.senderIf], [h.receiverNs, h.receiverIf]] as const) {
    await shOk('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '100ms']);
  }
}

export async function linkUp(h: TwoHosts, up: boolean): Promise<void> {
  await shOk('ip', ['-n', h.senderNs, 'link', 'set', h.senderIf, up ? 'up' : 'down']);
}

export async function receiverAddress(h: TwoHosts, present: boolean): Promise<void> {
  await shOk('ip', ['-n', h.receiverNs, 'addr', present ? 'add' : 'del', `${h.receiverAddr}/${h.prefix}`, 'dev', h.receiverIf]);
}

/** Bytes and packets the receiver's end has taken off the wire. */
export async function receiverRx(h: TwoHosts): Promise<{ bytes: number; packets: number }> {
  const text = await shOk('ip', ['netns', 'exec', h.receiverNs, 'cat', '/proc/net/dev']);
  const line = text.split('\n').find((l) => l.trim().startsWith(`${h.receiverIf}:`)) ?? '';
  const f = line.split(':')[1]?.trim().split(/\s+/).map(Number) ?? [];
  return { bytes: f[0] ?? 0, packets: f[1] ?? 0 };
}
