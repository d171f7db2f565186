/**
 * What a failed connect attempt means, decided in one place: a refusal no reconnect fixes by itself
 * (another protocol version, a wrong token, a certificate not trusted) or a receiver that cannot be
 * reached (said in words: "connection refused", not socket.io's "websocket error").
 */
import { createError, describeErrno, ErrorCode, type RelayError } from '@relayer/common';
import { cause, plainHangupHint, tlsFailure } from './tls-client.js';

export interface ConnectFailure {
  error: RelayError;
  /** The receiver refused this sender: jobs fail now rather than wait out --timeout. */
  refusal?: 'protocol' | 'auth' | 'tls';
}

export function connectFailure(err: Error & { data?: { code?: string; message?: string } }, name: string, url: string): ConnectFailure {
  if (err.data?.code === ErrorCode.PROTOCOL) {
    const message = typeof err.data.message === 'string' ? err.data.message.slice(0, 500) : `receiver ${name} speaks another protocol version`;
    return { error: createError(ErrorCode.PROTOCOL, message), refusal: 'protocol' };
  }
  if (err.data?.code === ErrorCode.AUTH) return { error: createError(ErrorCode.AUTH, `receiver ${name} refused the token`), refusal: 'auth' };
  const tls = tlsFailure(err, name, url);
  if (tls) return { error: tls, refusal: 'tls' };
  const errno = cause(err)?.code;
  const why = errno && /^E[A-Z_]+$/.test(errno) ? describeErrno(errno) : err.message;
  return { error: createError(ErrorCode.UNREACHABLE, `cannot connect to ${url}: ${why}${plainHangupHint(err, url)}`) };
}
