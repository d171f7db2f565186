/**
 * The shared secret: where it comes from and how it is compared. A token file may hold several tokens
 * (one per line) so a token can be rotated without downtime: receivers accept every listed token, a
 * sender presents the first. Token values never appear in an error message.
 */
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

/**
 * True when `given` equals one of the accepted tokens. Every token is compared (no early exit), so the
 * time taken does not say which one matched or how many there are before it.
 */
export function tokenAccepted(accepted: readonly string[], given: unknown): boolean {
  let ok = false;
  for (const t of accepted) ok = tokensEqual(t, given) || ok;
  return ok;
}

/** Token lines of a token file: trimmed, blank lines and `#` comments dropped. */
function parseTokenFile(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** Every token from --token-file (one per line), or else the env var's value as the only one. */
export function loadTokens(tokenFile: string | undefined, envToken: string | undefined): string[] {
  if (tokenFile) {
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw createError(ErrorCode.USAGE, `cannot read token file ${tokenFile} (${code})`);
    }
    const tokens = parseTokenFile(text);
    if (tokens.length === 0) throw createError(ErrorCode.USAGE, `token file ${tokenFile} holds no token (blank lines and # comments are ignored)`);
    return tokens;
  }
  const token = envToken?.trim();
  if (!token) throw createError(ErrorCode.USAGE, 'a shared token is required: pass --token-file <path> or set RELAY_TOKEN');
  return [token];
}

/** The token this side presents: the first one listed. */
export function loadToken(tokenFile: string | undefined, envToken: string | undefined): string {
  return loadTokens(tokenFile, envToken)[0]!;
}
