/** `relay certs --out DIR --node pi1 --node pi2=pi2.lan,10.0.0.2`: the command around certs.ts. */
import { Command, Option } from 'commander';
import { makeCerts, parseCertNode, type CertNode } from '../agent/certs.js';

const collect = (value: string, previous: CertNode[] = []): CertNode[] => [...previous, parseCertNode(value)];

export function makeCertsCommand(): Command {
  return new Command('certs')
    .description('make a private CA (or reuse the one in --out) and a TLS certificate per receiver node, with openssl')
    .requiredOption('--out <dir>', 'folder for ca.crt, ca.key and <node>.crt/.key (created 0700)')
    .addOption(new Option('--node <name[=host,ip,...]>', 'a receiver node: its name, and more host names or IPs it is reached by (repeatable)').argParser(collect))
    .addOption(new Option('--days <n>', 'node certificate lifetime in days').default('825'))
    .action(async (flags: { out: string; node?: CertNode[]; days: string }) => {
      const res = await makeCerts({ out: flags.out, nodes: flags.node ?? [], days: Number(flags.days) });
      const lines = [
        `${res.ca.created ? 'made' : 'reused'} CA ${res.ca.cert} (key ${res.ca.key}: keep it offline; senders get ${res.ca.cert} as --ca)`,
        ...res.nodes.map((n) => `made ${n.cert} and ${n.key} for ${[n.name, ...n.altNames].join(', ')} (relay-receiver --tls-cert ${n.cert} --tls-key ${n.key})`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
