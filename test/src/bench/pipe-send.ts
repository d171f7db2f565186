/** The baseline's sending end (a child process): streams argv[2] to 127.0.0.1:argv[3] and waits for the one-byte answer. */
import { createReadStream } from 'node:fs';
import net from 'node:net';

const [file, port] = [process.argv[2]!, Number(process.argv[3])];
const sock = net.connect(port, '127.0.0.1', () => createReadStream(file, { highWaterMark: 1024 * 1024 }).pipe(sock));
sock.once('data', () => sock.destroy());
sock.once('error', (err) => {
  console.error(err.message);
  process.exitCode = 1;
});
