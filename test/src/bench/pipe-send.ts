/**
 * The baseline's sending end, a long-lived child like the sender agent (so neither pays Node's start-up
 * in its CPU figures): for each line {"file", "port"} on stdin, streams the file to 127.0.0.1:port, waits
 * for the one-byte answer, and prints {"sent": bytes} (or {"error": message}).
 */
import { createReadStream } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';

function send(file: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => createReadStream(file, { highWaterMark: 1024 * 1024 }).pipe(sock));
    sock.once('data', () => {
      const n = sock.bytesWritten;
      sock.destroy();
      resolve(n);
    });
    sock.once('error', reject);
  });
}

console.log(JSON.stringify({ ready: true }));
for await (const line of createInterface({ input: process.stdin })) {
  const { file, port } = JSON.parse(line) as { file: string; port: number };
  console.log(JSON.stringify(await send(file, port).then((sent) => ({ sent }), (err: Error) => ({ error: err.message }))));
}
