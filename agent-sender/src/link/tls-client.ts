/**
 * The sender side of TLS: the private CA to trust (--ca), and turning a failed TLS connection into a
 * clear, coded error. An untrusted certificate, a host name the certificate is not for, or a receiver
 * that does not speak TLS is a TLS error that fails a job at once; there is never a fallback to plain.
 */
import { readFileSync } from 'node:fs';
import { createError, ErrorCode, type RelayError } from '@relayer/common';

/** Reads --ca (PEM, one or more certificates). Throws USAGE naming the file. */
export function readCaFile(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw createError(ErrorCode.USAGE, `cannot read the CA file ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw createError(ErrorCode.USAGE, `${file} holds no PEM certificate`);
  return pem;
}

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'INVALID_CA', 'ERR_TLS_CERT_ALTNAME_FORMAT',
]);

/** The Node error under a socket.io-client connect_error (TransportError → ws ErrorEvent → Error). */
export function cause(err: unknown): NodeJS.ErrnoException | undefined {
  const d = (err as { description?: { error?: unknown } } | undefined)?.description;
  const e = d?.error ?? d;
  return e instanceof Error ? (e as NodeJS.ErrnoException) : undefined;
}

/** A TLS error for a failed connect attempt, or undefined when the failure is not about TLS. */
export function tlsFailure(err: unknown, name: string, url: string): RelayError | undefined {
  const e = cause(err);
  if (!e) return undefined;
  const code = e.code ?? '';
  const first = e.message.split('\n')[0]!;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return createError(ErrorCode.TLS, `receiver ${name} (${url}): its certificate is not for this host name (${first}); use a name the certificate lists, or remake it with \`relay certs --node name=host\``);
  }
  if (UNTRUSTED.has(code)) {
    return createError(ErrorCode.TLS, `receiver ${name} (${url}): its certificate is not trusted (${code}); pass the CA that signed it with --ca <file>`);
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/i.test(e.message)) {
    return createError(ErrorCode.TLS, `receiver ${name} (${url}) does not speak TLS; use an http:// URL, or start the receiver with --tls-cert and --tls-key`);
  }
  if (/^ERR_SSL_|^ERR_TLS_/.test(code)) return createError(ErrorCode.TLS, `receiver ${name} (${url}): TLS handshake failed (${code})`);
  return undefined;
}

/** A hint for a plain connection closed before any answer: limits, or a receiver that wants TLS. */
export function plainHangupHint(err: unknown, url: string): string {
  const e = cause(err);
  if (!url.startsWith('http://') || !e || (e.code !== 'ECONNRESET' && !/socket hang up/.test(e.message))) return '';
  return ' (closed before any answer: the receiver refused the connection (limits), or it serves TLS and wants an https:// URL)';
}
