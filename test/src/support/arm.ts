/**
 * The project's bins as ARM processes under qemu-user, for `npm run test:arm`: a tree that
 * test/arm/prepare.sh installed for arm64 or armv7, run by the bins' own #! lines with a `node` on PATH that
 * is Node for that ARM under qemu (so `exec node` in relay-receiver and `#!/usr/bin/env node` stay ARM too).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { track } from './lifecycle.js';
import { LoggedProcess, untilExit, type CliResult } from './processes.js';
import { TOKEN } from './peers.js';

/** arm64: 64-bit Raspberry Pi OS; armv7: 32-bit (armhf). */
export type ArmKind = 'arm64' | 'armv7';

export interface ArmPlatform {
  kind: ArmKind;
  /** What that Node says in process.arch. */
  arch: 'arm64' | 'arm';
  /** The qemu-user binary the processes run under, as /proc/<pid>/exe names it. */
  qemu: RegExp;
  /** The folder holding the `node` wrapper. */
  nodeBin: string;
  /** The tree installed for that ARM. */
  app: string;
}

/** What prepare.sh wrote for that ARM (RELAY_ARM_CACHE, default /var/cache/relayer-arm), or undefined when it did not run. */
export function armPlatform(kind: ArmKind = 'arm64', cache = process.env.RELAY_ARM_CACHE ?? '/var/cache/relayer-arm'): ArmPlatform | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(cache, 'env'), 'utf8');
  } catch {
    return undefined;
  }
  const env = Object.fromEntries(text.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
  const prefix = kind === 'arm64' ? 'RELAY_ARM' : 'RELAY_ARMV7';
  const nodeBin = env[`${prefix}_NODE_BIN`], app = env[`${prefix}_APP`];
  if (!nodeBin || !app) return undefined;
  return kind === 'arm64'
    ? { kind, arch: 'arm64', qemu: /qemu-aarch64(-static)?$/, nodeBin, app }
    : { kind, arch: 'arm', qemu: /qemu-arm(-static)?$/, nodeBin, app };
}

export type ArmBin = 'relay-receiver' | 'relay-sender' | 'relay';

/** Spawns an ARM bin (killed after the test unless it exited); its stderr JSON logs are parsed as for spawnBin. */
export function spawnArm(p: ArmPlatform, bin: ArmBin, args: string[], env: Record<string, string | undefined> = {}): LoggedProcess {
  const child = spawn(path.join(p.app, 'node_modules/.bin', bin), args, {
    env: { ...process.env, PATH: `${p.nodeBin}:${process.env.PATH ?? ''}`, RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lp = new LoggedProcess(child);
  track(() => lp.kill('SIGKILL'));
  return lp;
}

/** Runs an ARM bin to completion (bounded by timeoutMs). */
export async function runArm(p: ArmPlatform, bin: ArmBin, args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 180_000): Promise<CliResult> {
  return untilExit(spawnArm(p, bin, args, env), timeoutMs);
}
