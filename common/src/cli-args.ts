/**
 * Commander argument parsers shared by the CLIs: typed values from argv or env, and a bad value is a
 * usage error (exit 2) that names the flag, the value and the stable code.
 */
import { InvalidArgumentError } from 'commander';
import { quoted } from './echo.js';
import { createError, ErrorCode } from './errors.js';

/** Wraps one of our parsers for commander's argParser. */
export function arg<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

/** A repeatable option whose env variable holds several values joined by `separator`. */
export function list<T>(parse: (text: string) => T, separator: string | RegExp = ','): (text: string, previous?: T[]) => T[] {
  const one = arg(parse);
  return (text, previous = []) => [...previous, ...text.split(separator).map((s) => s.trim()).filter(Boolean).map(one)];
}

export function parsePositiveInt(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) throw createError(ErrorCode.USAGE, `not a positive integer: ${quoted(text)}`);
  return n;
}

/** --hash-threads: 0 (hash on the main thread) to 16. */
export function parseThreads(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 16) throw createError(ErrorCode.USAGE, `not a thread count from 0 to 16: ${quoted(text)}`);
  return n;
}

export function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw createError(ErrorCode.USAGE, `not a port: ${quoted(text)}`);
  return n;
}
