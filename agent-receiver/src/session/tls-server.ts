/**
 * The receiver's listener: plain http, or https when given a certificate and key (the websocket is then
 * wss). A plain client on a TLS port fails its handshake and is closed: it never reaches Socket.IO.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createError, ErrorCode, type Logger } from '@relayer/common';

export interface TlsServerOptions {
  /** PEM certificate chain (the node's certificate first). */
  cert: string | Buffer;
  /** PEM private key. */
  key: string | Buffer;
}

/** Reads --tls-cert / --tls-key; both or neither. Throws USAGE naming the file. */
export function readTlsServerFiles(certFile: string | undefined, keyFile: string | undefined): TlsServerOptions | undefined {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw createError(ErrorCode.USAGE, 'TLS needs both --tls-cert and --tls-key');
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw createError(ErrorCode.USAGE, `cannot read the TLS ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
  };
  return { cert: read(certFile, 'certificate'), key: read(keyFile, 'key') };
}

export function createListener(tls: TlsServerOptions | undefined, handler: RequestListener, handshakeTimeoutMs: number, log: Logger): HttpServer {
  if (!tls) return createHttpServer(handler);
  let server;
  try {
    server = createHttpsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', handshakeTimeout: handshakeTimeoutMs }, handler);
  } catch (err) {
    throw createError(ErrorCode.USAGE, `cannot use the TLS certificate and key: ${(err as Error).message}`);
  }
  // Without a listener these are silent; at debug they explain a client that cannot connect.
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug({ peer: socket.remoteAddress, code: err.code, reason: err.message }, 'TLS handshake failed (a plain http client, or one that does not trust this certificate)');
  });
  return server;
}
