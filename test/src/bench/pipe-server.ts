/**
 * The baseline's receiving end (a child process): a TCP server that writes each connection's bytes to a
 * new file in argv[2], fsyncs it, then answers one byte. Prints {"port": n} when listening.
 */
import { createWriteStream, fsyncSync, openSync, closeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const dir = process.argv[2]!;
let n = 0;
const server = net.createServer({ allowHalfOpen: true }, (sock) => {
  const file = path.join(dir, `pipe-${n++}`);
  const out = createWriteStream(file);
  sock.pipe(out);
  out.on('finish', () => {
    const fd = openSync(file, 'r');
    fsyncSync(fd);
    closeSync(fd);
    sock.end('k');
  });
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as net.AddressInfo).port })));
process.on('SIGTERM', () => process.exit(0));
