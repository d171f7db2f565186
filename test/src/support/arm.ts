/**
 * The project's bins as arm64 processes under qemu-user, for `npm run test:arm`: the tree that
 * test/arm/prepare.sh installed for arm64, run by the bins' own #! lines with a `node` on PATH that is Node
 * for arm64 under qemu (so `exec node` in relay-receiver and `#!/usr/bin/env node` stay ARM too).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { track } from './lifecycle.js';
import { LoggedProcess, untilExit, type CliResult } from './processes.js';
import { TOKEN } from './peers.js';

export interface ArmPlatform {
  /** The folder holding the `node` wrapper. */
  nodeBin: string;
  /** The tree installed for arm64. */
  app: string;
}

/** What prepare.sh wrote (RELAY_ARM_CACHE, default /var/cache/relayer-arm), or undefined when it did not run. */
export function armPlatform(cache = process.env.RELAY_ARM_CACHE ?? '/var/cache/relayer-arm'): ArmPlatform | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(cache, 'env'), 'utf8');
  } catch {
    return undefined;
  }
  const env = Object.fromEntries(text.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
  return { nodeBin: env.RELAY_ARM_NODE_BIN!, app: env.RELAY_ARM_APP! };
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
