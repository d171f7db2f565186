/**
 * `relay certs`: a private CA and one certificate per receiver node, made with the openssl CLI (EC
 * P-256). The CA key is reused when it is already in the output folder, so nodes can be added later.
 * Keys are written 0600; senders are given ca.crt (--ca), each receiver its <node>.crt/.key.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { createError, ErrorCode, quoted } from '@relayer/common';

const run = promisify(execFile);

export interface CertNode {
  /** File name stem and the certificate's CN; also its first DNS name. */
  name: string;
  /** More host names or IP addresses the node is reached by. */
  altNames: string[];
}

export interface CertsOptions {
  out: string;
  nodes: CertNode[];
  /** Node certificate lifetime. Default 825 days. */
  days?: number;
  /** CA lifetime (only when a CA is made). Default 3650 days. */
  caDays?: number;
  /** Common name of a new CA. Default "Relayer CA". */
  caName?: string;
}

export interface CertsResult {
  ca: { cert: string; key: string; created: boolean };
  nodes: Array<{ name: string; cert: string; key: string; altNames: string[] }>;
}

/** "pi1" or "pi1=pi1.lan,10.0.0.5". */
export function parseCertNode(spec: string): CertNode {
  const [name, rest] = spec.split('=', 2) as [string, string | undefined];
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw createError(ErrorCode.USAGE, `--node: bad node name ${quoted(name)} (letters, digits, . _ -)`);
  const altNames = (rest ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const a of altNames) {
    if (!isIP(a) && !/^[A-Za-z0-9*][A-Za-z0-9.-]*$/.test(a)) throw createError(ErrorCode.USAGE, `--node ${name}: bad host name or address ${quoted(a)}`);
  }
  return { name, altNames };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 60_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw createError(ErrorCode.USAGE, 'relay certs needs the openssl command (apt-get install openssl)');
    throw createError(ErrorCode.IO, `openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().split('\n')[0]}`);
  }
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

export async function makeCerts(opts: CertsOptions): Promise<CertsResult> {
  if (opts.nodes.length === 0) throw createError(ErrorCode.USAGE, 'relay certs needs at least one --node');
  const out = path.resolve(opts.out);
  await mkdir(out, { recursive: true, mode: 0o700 });
  const caKey = path.join(out, 'ca.key');
  const caCert = path.join(out, 'ca.crt');
  const reuse = (await exists(caKey)) && (await exists(caCert));
  if (!reuse) {
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', caKey, '-out', caCert, '-days', String(opts.caDays ?? 3650), '-subj', `/CN=${opts.caName ?? 'Relayer CA'}`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    await chmod(caKey, 0o600);
  }
  const nodes: CertsResult['nodes'] = [];
  for (const n of opts.nodes) {
    const key = path.join(out, `${n.name}.key`);
    const cert = path.join(out, `${n.name}.crt`);
    const csr = path.join(out, `${n.name}.csr`);
    const ext = path.join(out, `${n.name}.ext`);
    const sans = [n.name, ...n.altNames].map((a) => (isIP(a) ? `IP:${a}` : `DNS:${a}`));
    await writeFile(ext, [
      `subjectAltName=${[...new Set(sans)].join(',')}`, 'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', '',
    ].join('\n'));
    try {
      await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${n.name}`]);
      await chmod(key, 0o600);
      await openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`,
        '-days', String(opts.days ?? 825), '-extfile', ext, '-out', cert]);
    } finally {
      await rm(csr, { force: true });
      await rm(ext, { force: true });
    }
    nodes.push({ name: n.name, cert, key, altNames: n.altNames });
  }
  return { ca: { cert: caCert, key: caKey, created: !reuse }, nodes };
}
