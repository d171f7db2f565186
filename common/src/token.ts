/** The shared secret: where it comes from and how it is compared. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createError, ErrorCode } from './errors.js';

/** Constant-time comparison; hashing first makes both sides the same length. */
export function tokensEqual(expected: string, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** The token from --token-file (first line, trimmed) or else from the env var's value. */
export function loadToken(tokenFile: string | undefined, envToken: string | undefined): string {
  let token: string | undefined;
  if (tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').split(/\r?\n/)[0]!.trim();
    } catch (err) {
      throw createError(ErrorCode.USAGE, `cannot read token file ${tokenFile}: ${(err as Error).message}`);
    }
    if (!token) throw createError(ErrorCode.USAGE, `token file ${tokenFile} is empty`);
  } else {
    token = envToken?.trim();
  }
  if (!token) throw createError(ErrorCode.USAGE, 'a shared token is required: pass --token-file <path> or set RELAY_TOKEN');
  return token;
}
