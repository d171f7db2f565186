/** Test support: everything a test starts is registered here and closed by `closeAll` in afterEach. */
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Receiver, type ReceiverOptions } from '@relayer/agent-receiver';
import { Link, sendDirect, type JobEvent, type TransferOptions } from '@relayer/agent-sender';
import type { Logger } from '@relayer/common';

export const TOKEN = 'test-token-' + randomBytes(8).toString('hex');
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = {
  receiver: path.join(REPO_ROOT, 'node_modules/.bin/relay-receiver'),
  relay: path.join(REPO_ROOT, 'node_modules/.bin/relay'),
  sender: path.join(REPO_ROOT, 'node_modules/.bin/relay-sender'),
};

type Closer = () => unknown;
const closers: Closer[] = [];

/** Registers something to close after the current test. */
export function track(close: Closer): void {
  closers.push(close);
}

/** Closes everything tracked, newest first. Use as `afterEach(closeAll)`. */
export async function closeAll(): Promise<void> {
  while (closers.length) {
    try {
      await closers.pop()!();
    } catch {
      /* a failed close must not hide the test's own result */
    }
  }
}

/** Logs are silent unless TEST_LOG_LEVEL is set (e.g. TEST_LOG_LEVEL=debug npm test). */
export function testLogger(name = 'test'): Logger {
  return pino({ name, level: process.env.TEST_LOG_LEVEL ?? 'silent' }, pino.destination(2));
}

export async function tmpDir(prefix = 'relay-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  track(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface RandomFile {
  path: string;
  size: number;
  sha256: string;
}

/** Writes `size` random bytes to dir/name and returns its sha256. */
export async function randomFile(dir: string, size: number, name = `file-${randomBytes(4).toString('hex')}.bin`): Promise<RandomFile> {
  const file = path.join(dir, name);
  await mkdir(path.dirname(file), { recursive: true });
  const fh = await open(file, 'w');
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  try {
    for (let pos = 0; pos < size; pos += buf.length) {
      const piece = buf.subarray(0, Math.min(buf.length, size - pos));
      randomFillSync(piece);
      hash.update(piece);
      await fh.write(piece, 0, piece.length, pos);
    }
  } finally {
    await fh.close();
  }
  return { path: file, size, sha256: hash.digest('hex') };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(file)) hash.update(c as Buffer);
  return hash.digest('hex');
}

export type TestReceiver = Receiver & { dir: string };

/** A receiver on 127.0.0.1, port 0, in a fresh temp folder, closed after the test. */
export async function startReceiver(opts: Partial<ReceiverOptions> = {}): Promise<TestReceiver> {
  const dir = opts.dir ?? (await tmpDir('relay-inbox-'));
  const r = new Receiver({ host: '127.0.0.1', port: 0, token: TOKEN, minFree: 0, logger: testLogger('receiver'), ...opts, dir });
  await r.start();
  track(() => r.close());
  return Object.assign(r, { dir });
}

/** A started Link, closed after the test. */
export function startLink(url: string, opts: { token?: string; heartbeatMs?: number; name?: string } = {}): Link {
  const link = new Link({ name: opts.name ?? url, url, token: opts.token ?? TOKEN, logger: testLogger('link'), heartbeatMs: opts.heartbeatMs ?? 0 }).start();
  track(() => link.close());
  return link;
}

export interface SendResult {
  ok: boolean;
  events: JobEvent[];
  received: Extract<JobEvent, { type: 'received' }>[];
  failed: Extract<JobEvent, { type: 'failed' }>[];
}

/** `relay send --direct` as a library call; collects the event stream. */
export async function send(
  paths: string[],
  urls: string[],
  opts: { as?: string; token?: string; transfer?: Partial<TransferOptions>; signal?: AbortSignal; onEvent?: (e: JobEvent) => void } = {},
): Promise<SendResult> {
  const events: JobEvent[] = [];
  const ok = await sendDirect({
    paths, urls, as: opts.as, token: opts.token ?? TOKEN, logger: testLogger('sender'), signal: opts.signal,
    transfer: { timeoutMs: 20_000, ackTimeoutMs: 10_000, ...opts.transfer },
  }, (e) => {
    events.push(e);
    opts.onEvent?.(e);
  });
  return {
    ok,
    events,
    received: events.filter((e): e is SendResult['received'][number] => e.type === 'received'),
    failed: events.filter((e): e is SendResult['failed'][number] => e.type === 'failed'),
  };
}

/**
 * Waits for `event` on `emitter` (optionally one matching `match`), failing after timeoutMs. One listener
 * stays attached throughout, so events emitted in a burst within one tick are all seen.
 */
export function waitFor<T extends unknown[] = unknown[]>(
  emitter: EventEmitter, event: string, match: (...args: T) => boolean = () => true, timeoutMs = 20_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onEvent = (...args: unknown[]): void => {
      let matched: boolean;
      try {
        matched = match(...(args as T));
      } catch (err) {
        finish();
        return reject(err);
      }
      if (!matched) return;
      finish();
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeoutMs}ms waiting for "${event}"`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
    };
    emitter.on(event, onEvent);
  });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the project's bins to completion (bounded by timeoutMs). */
export function runBin(bin: string, args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// Helpers added with the core-relay suite.
// ---------------------------------------------------------------------------------------------------------
import type { ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { crc32 } from 'node:zlib';
import { expect } from 'chai';
import { PARTIAL_DIR, RelayError, type ChunkFrame } from '@relayer/common';

export const MiB = 1024 * 1024;

/** Names inside `<dir>/.relay-partial/` (empty when no transfer holds a partial). */
export async function partialEntries(dir: string): Promise<string[]> {
  return readdir(path.join(dir, PARTIAL_DIR)).catch(() => []);
}

/** Names directly inside dir, without the partial folder. */
export async function publishedEntries(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n !== PARTIAL_DIR).sort();
}

/** A port that was free a moment ago on 127.0.0.1 (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A pino logger that writes its JSON lines into memory, for asserting on what gets logged. */
export function captureLogger(level = 'trace'): { logger: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const logger = pino({ name: 'captured', level }, { write: (s: string) => void lines.push(s) });
  return { logger, lines, text: () => lines.join('') };
}

/** A started Link that is connected (waits for the handshake), closed after the test. */
export async function connectedLink(url: string, opts: { token?: string; name?: string } = {}): Promise<Link> {
  const link = startLink(url, opts);
  await link.ready(10_000);
  return link;
}

/** A chunk frame with the right crc32 (pass `crc` to corrupt it). */
export function chunkOf(lease: string, offset: number, data: Uint8Array, crc = crc32(data)): ChunkFrame {
  return { lease, offset, crc, data };
}

/** Asserts that fn throws a RelayError with this code. */
export function expectThrowsCode(fn: () => unknown, code: string): RelayError {
  try {
    fn();
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(RelayError);
    expect((err as RelayError).code).to.equal(code);
    return err as RelayError;
  }
  return expect.fail(`expected a RelayError ${code}, nothing was thrown`);
}

/** Asserts that the promise rejects with a RelayError with this code. */
export async function expectRejectsCode(p: Promise<unknown>, code: string): Promise<RelayError> {
  try {
    await p;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(RelayError);
    expect((err as RelayError).code).to.equal(code);
    return err as RelayError;
  }
  return expect.fail(`expected a rejection with ${code}, it resolved`);
}

export interface ReceiverProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  url: string;
  /** Parsed JSON log lines from stderr so far. */
  logs: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs the real `relay-receiver` bin as a child process (token from RELAY_TOKEN) and resolves once it logs
 * "receiver listening". The child is SIGKILLed (by its pid) after the test if still running.
 */
export async function startReceiverProcess(opts: { dir: string; port?: number; args?: string[]; env?: Record<string, string | undefined> }): Promise<ReceiverProcess> {
  const args = [BIN.receiver, '--host', '127.0.0.1', '--port', String(opts.port ?? 0), '--dir', opts.dir, '--min-free', '0', ...(opts.args ?? [])];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined, ...opts.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  track(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let text = '';
  const logs: Array<Record<string, unknown>> = [];
  const listening = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      text += `${line}\n`;
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'receiver listening') resolve(entry.port as number);
    });
    void exited.then(({ code, signal }) => reject(new Error(`relay-receiver exited (${code ?? signal}) before listening: ${text}`)));
  });
  const port = await listening;
  return { child, pid: child.pid!, port, url: `http://127.0.0.1:${port}`, logs, stderr: () => text, exited };
}
