/**
 * `relay status | head -2`, `relay send … | head -1`: once the reader of stdout (or stderr) is gone,
 * writing there fails with EPIPE, which Node reports as an unhandled 'error' event and a stack trace.
 * Output nobody reads is simply dropped: status has nothing left to do and exits 0; a send carries on to
 * its confirmation (cancelling a delivery because a pager quit would be worse) and exits with its code.
 */
export function dropOutputOnClosedPipe(...streams: NodeJS.WriteStream[]): void {
  for (const stream of streams) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
      // Anything else (a full disk behind a redirect) is a real failure: report it where it can be seen.
      process.exitCode = 1;
      process.emitWarning(`relay: cannot write output: ${err.message}`);
    });
  }
}
