/** Test lifecycle: everything a test starts is registered with `track` and closed by `closeAll` in afterEach. */
import type { EventEmitter } from 'node:events';
import { pino } from 'pino';
import type { Logger } from '@relayer/common';

type Closer = () => unknown;
const closers: Closer[] = [];

/** Registers something to close after the current test. */
export function track(close: Closer): void {
  closers.push(close);
}

/**
 * Closes everything tracked, newest first; every closer runs even when one fails, and then the failures
 * are reported (the afterEach hook fails, naming them) instead of being swallowed.
 */
export async function closeAll(): Promise<void> {
  const failures: unknown[] = [];
  while (closers.length) {
    try {
      await closers.pop()!();
    } catch (err) {
      failures.push(err);
    }
  }
  if (failures.length) throw new AggregateError(failures, `${failures.length} close(s) failed: ${failures.map(String).join('; ')}`);
}

/** Logs are silent unless TEST_LOG_LEVEL is set (e.g. TEST_LOG_LEVEL=debug npm test). */
export function testLogger(name = 'test'): Logger {
  return pino({ name, level: process.env.TEST_LOG_LEVEL ?? 'silent' }, pino.destination(2));
}

/** A pino logger that writes its JSON lines into memory, for asserting on what gets logged. */
export function captureLogger(level = 'trace'): { logger: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const logger = pino({ name: 'captured', level }, { write: (s: string) => void lines.push(s) });
  return { logger, lines, text: () => lines.join('') };
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

/**
 * Polls a condition (bounded in time) for state a peer reaches after an event the test cannot observe,
 * such as a counter on another process's /metrics. Prefer waitFor wherever an event exists.
 */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !(await check()); ) {
    if (Date.now() > end) throw new Error(`${what}: not true within ${timeoutMs}ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
