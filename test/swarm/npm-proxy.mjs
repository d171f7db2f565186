// A CONNECT proxy for builds inside a test node that need the npm registry, without routing anything out
// of the node's namespace: `serve <unix socket>` runs on the host and opens connections to
// registry.npmjs.org:443 only; `forward <host:port> <unix socket>` runs inside the node's network namespace
// and carries each TCP connection to that Unix socket. Used by build-from-source.sh.
import net from 'node:net';

const [mode, a, b] = process.argv.slice(2);
const ALLOWED = /^registry\.npmjs\.org:443$/;

if (mode === 'serve') {
  net.createServer((client) => {
    client.once('data', (head) => {
      const line = head.toString('latin1').split('\r\n')[0] ?? '';
      const m = /^CONNECT (\S+) HTTP\/1\.[01]$/.exec(line);
      if (!m || !ALLOWED.test(m[1])) {
        client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      const [host, port] = m[1].split(':');
      const up = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        up.pipe(client); client.pipe(up);
      });
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
  }).listen(a);
} else if (mode === 'forward') {
  const [host, port] = a.split(':');
  net.createServer((c) => {
    const u = net.connect(b);
    c.pipe(u); u.pipe(c);
    u.on('error', () => c.destroy());
    c.on('error', () => u.destroy());
  }).listen(Number(port), host);
} else {
  process.stderr.write('usage: npm-proxy.mjs serve <unix socket> | forward <host:port> <unix socket>\n');
  process.exit(2);
}
