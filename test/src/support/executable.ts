/**
 * Finds a command the way a root shell on Debian does: along PATH, then the sbin folders a non-login or
 * sudo PATH may leave out (Debian puts sshd, dockerd and iptables there). Returns the absolute path, since
 * some programs (sshd) must be started by one, or undefined when it is not installed.
 */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export function findExecutable(name: string, searchPath = process.env.PATH ?? ''): string | undefined {
  const dirs = [...searchPath.split(path.delimiter).filter((d) => path.isAbsolute(d)), ...SBIN];
  for (const dir of dirs) {
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}
