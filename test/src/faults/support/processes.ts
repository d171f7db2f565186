/**
 * The system under test as its users run it: the `relay-receiver` and `relay-sender` binaries as child
 * processes (optionally inside a network namespace), `relay send` through the agent's socket or
 * `--direct`, and `/healthz`. Nothing here knows the wire protocol.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { BIN, hostTool, sh, TOKEN, type Cleanup } from './harness.js';
import { launchFlags } from '../../support/launch-flags.js';

export type LogLine = Record<string, unknown> & { msg?: string };

/** A child process running one of the project's bins, its JSON log lines parsed as they come. */
export class BinProcess extends EventEmitter {
  readonly logs: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private text = '';

  constructor(readonly name: string, readonly child: ChildProcess) {
    super();
    this.setMaxListeners(100);
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (this.text.length < 4 * 1024 * 1024) this.text += `${line}\n`;
      let entry: LogLine;
      try {
        entry = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      // Bounded: a long scenario keeps the recent lines only.
      if (this.logs.length > 200_000) this.logs.splice(0, 100_000);
      this.logs.push(entry);
      this.emit('log', entry);
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  stderr(): string {
    return this.text;
  }

  /** Resolves with the first log line (past or future) matching `match`; rejects on exit or timeout. */
  waitLog(what: string, match: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const onLog = (l: LogLine): void => {
        if (!match(l)) return;
        done();
        resolve(l);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: timed out after ${timeoutMs}ms waiting for log "${what}"`));
      }, timeoutMs);
      const onExit = (): void => {
        done();
        reject(new Error(`${this.name} exited while waiting for log "${what}": ${this.text.slice(-2000)}`));
      };
      const done = (): void => {
        clearTimeout(timer);
        this.off('log', onLog);
        this.child.off('exit', onExit);
      };
      this.on('log', onLog);
      this.child.once('exit', onExit);
    });
  }

  /** kill -9, by this process's own pid; resolves once it is gone. */
  async kill9(): Promise<void> {
    if (this.alive) process.kill(this.pid, 'SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.alive) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.alive && this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** `ip netns exec NS` in front of a command (exec keeps the pid: the child's pid is the program's). */
function inNetns(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns ? [hostTool('ip'), ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
}

export interface ReceiverSpec {
  dir: string;
  host?: string;
  port: number;
  netns?: string;
  args?: string[];
  /** Runs the receiver inside this blkio cgroup (its cgroup.procs file). */
  cgroupProcs?: string;
  name?: string;
}

export class ReceiverBin extends BinProcess {
  constructor(readonly spec: ReceiverSpec, child: ChildProcess) {
    super(spec.name ?? 'relay-receiver', child);
  }

  get url(): string {
    return `http://${this.spec.host ?? '127.0.0.1'}:${this.spec.port}`;
  }
}

/** Starts `relay-receiver` and waits for "receiver listening". Killed (by pid) at cleanup. */
export async function startReceiver(cleanup: Cleanup, spec: ReceiverSpec, timeoutMs = 30_000): Promise<ReceiverBin> {
  // As the image starts it: with the Node flags relay-receiver starts itself with.
  const args = [...launchFlags(BIN.receiver), BIN.receiver, '--host', spec.host ?? '127.0.0.1', '--port', String(spec.port), '--dir', spec.dir,
    '--min-free', '0', '--summary-every', '0', '--log-level', 'info', ...(spec.args ?? [])];
  let [cmd, argv] = inNetns(spec.netns, process.execPath, args);
  if (spec.cgroupProcs) [cmd, argv] = ['sh', ['-c', `echo $$ > ${spec.cgroupProcs} && exec "$0" "$@"`, cmd, ...argv]];
  const child = spawn(cmd, argv, {
    env: { ...process.env, RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const r = new ReceiverBin(spec, child);
  cleanup.add(`kill receiver ${child.pid}`, () => r.kill9());
  await r.waitLog('receiver listening', (l) => l.msg === 'receiver listening', timeoutMs);
  return r;
}

export interface AgentSpec {
  socket: string;
  receivers: Record<string, string>;
  allowRoots: string[];
  netns?: string;
  args?: string[];
}

/** Starts `relay-sender` and waits for "sender agent started". Killed (by pid) at cleanup. */
export async function startAgent(cleanup: Cleanup, spec: AgentSpec): Promise<BinProcess> {
  const args = [BIN.sender, '--socket', spec.socket, '--heartbeat', '1s', '--summary-every', '0', '--log-level', 'info',
    ...Object.entries(spec.receivers).flatMap(([n, u]) => ['--receiver', `${n}=${u}`]),
    ...spec.allowRoots.flatMap((r) => ['--allow-root', r]), ...(spec.args ?? [])];
  const [cmd, argv] = inNetns(spec.netns, process.execPath, args);
  const child = spawn(cmd, argv, { env: { ...process.env, RELAY_TOKEN: TOKEN, RELAY_LOG_LEVEL: undefined }, stdio: ['ignore', 'ignore', 'pipe'] });
  const a = new BinProcess('relay-sender', child);
  cleanup.add(`kill agent ${child.pid}`, () => a.kill9());
  await a.waitLog('sender agent started', (l) => l.msg === 'sender agent started', 30_000);
  return a;
}

export type SendEvent = Record<string, unknown> & { type: string };

export interface SendResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The `--json` event lines. */
  events: SendEvent[];
  received: SendEvent[];
  failed: SendEvent[];
}

export interface SendHandle {
  child: ChildProcess;
  done: Promise<SendResult>;
}

/** Starts `relay send --json ARGS` (with the agent's socket, or --direct args given by the caller). */
export function startSend(args: string[], opts: { socket?: string; netns?: string; timeoutMs?: number } = {}): SendHandle {
  const [cmd, argv] = inNetns(opts.netns, process.execPath, [BIN.relay, 'send', '--json', ...args]);
  const child = spawn(cmd, argv, {
    env: { ...process.env, RELAY_TOKEN: TOKEN, ...(opts.socket ? { RELAY_SOCKET: opts.socket } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
  const done = new Promise<SendResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const events = stdout.split('\n').flatMap((l) => {
        try {
          const e = JSON.parse(l) as SendEvent;
          return typeof e?.type === 'string' ? [e] : [];
        } catch {
          return [];
        }
      });
      resolve({
        code, signal, stdout, stderr, events,
        received: events.filter((e) => e.type === 'received'),
        failed: events.filter((e) => e.type === 'failed'),
      });
    });
  });
  return { child, done };
}

export function send(args: string[], opts: { socket?: string; netns?: string; timeoutMs?: number } = {}): Promise<SendResult> {
  return startSend(args, opts).done;
}

/** A short description of a send for assertion messages. */
export function describeSend(r: SendResult): string {
  return `exit ${r.code ?? r.signal}; failed: ${JSON.stringify(r.failed)}; stderr: ${r.stderr.slice(-1500)}`;
}

export interface Health {
  status: string;
  activeTransfers: number;
  senders: number;
  freeBytes: number | null;
  [k: string]: unknown;
}

/** GET /healthz (from inside `netns` when given: the address is only reachable there). */
export async function healthz(url: string, netns?: string): Promise<Health> {
  if (!netns) {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
    return (await res.json()) as Health;
  }
  const script = `fetch(process.argv[1] + '/healthz', { signal: AbortSignal.timeout(10000) })
    .then(async (r) => { process.stdout.write(await r.text()); process.exit(r.status === 200 ? 0 : 1); }, (e) => { console.error(String(e)); process.exit(1); })`;
  const r = await sh('ip', ['netns', 'exec', netns, process.execPath, '-e', script, url], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`/healthz in ${netns} failed: ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout) as Health;
}

/** A port that was free a moment ago on 127.0.0.1 (for a receiver that must restart on the same port). */
export { freePort } from '../../support/processes.js';

export function socketPathIn(dir: string): string {
  return path.join(dir, 'agent.sock');
}
