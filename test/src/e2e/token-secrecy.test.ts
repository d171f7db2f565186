import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { startAgent } from '../support/agent.js';
import { BIN, closeAll, freePort, randomFile, runBin, sha256File, startReceiverProcess, tmpDir } from '../support/util.js';

describe('tokens: rotation with several tokens, and no token value in any log, error, status or health output', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  it('a receiver accepts every token in its file; senders on the old and the new token both deliver; nothing prints a token', async () => {
    const oldToken = `old-${randomBytes(16).toString('hex')}`;
    const newToken = `new-${randomBytes(16).toString('hex')}`;
    const wrongToken = `wrong-${randomBytes(16).toString('hex')}`;
    const secrets = await tmpDir('relay-secrets-');
    const receiverTokens = path.join(secrets, 'receiver-tokens');
    await writeFile(receiverTokens, `# rotating: new first, old until every sender has moved\n${newToken}\n\n${oldToken}\n`);
    const oldFile = path.join(secrets, 'old');
    const newFile = path.join(secrets, 'new');
    const wrongFile = path.join(secrets, 'wrong');
    await writeFile(oldFile, `${oldToken}\n`);
    await writeFile(newFile, `${newToken}\n`);
    await writeFile(wrongFile, `${wrongToken}\n`);

    const inbox = await tmpDir('relay-inbox-');
    const rp = await startReceiverProcess({
      dir: inbox, args: ['--log-level', 'trace', '--token-file', receiverTokens], env: { RELAY_TOKEN: undefined },
    });
    const src = await tmpDir('relay-src-');
    const f = await randomFile(src, 200_000, 'rotated.bin');
    const output: string[] = [];

    // An agent still on the old token, a direct send on the new one, and one on a wrong token.
    const agent = await startAgent({ receivers: { r: rp.url }, allowRoots: [src], extraArgs: ['--token-file', oldFile, '--log-level', 'trace'] });
    const viaAgent = await agent.relay(['send', f.path, '--to', 'r', '--as', 'old/rotated.bin']);
    const status = await agent.relay(['status', '--json']);
    const direct = await runBin(BIN.relay, ['send', f.path, '--direct', '--to', rp.url, '--as', 'new/rotated.bin', '--token-file', newFile, '--log-level', 'trace'], { env: { RELAY_TOKEN: undefined } });
    const wrong = await runBin(BIN.relay, ['send', f.path, '--direct', '--to', rp.url, '--as', 'wrong.bin', '--token-file', wrongFile, '--log-level', 'trace', '--json'], { env: { RELAY_TOKEN: undefined } });
    const health = await (await fetch(`${rp.url}/healthz`)).text();
    // Connect failures are logged with their error objects: a TLS client to this plain receiver, and a closed port.
    const tlsFail = await runBin(BIN.relay, ['send', f.path, '--direct', '--to', rp.url.replace('http://', 'https://'), '--token-file', newFile, '--log-level', 'trace'], { env: { RELAY_TOKEN: undefined } });
    const closed = await runBin(BIN.relay, ['send', f.path, '--direct', '--to', `http://127.0.0.1:${await freePort()}`, '--timeout', '2s', '--token-file', newFile, '--log-level', 'trace'], { env: { RELAY_TOKEN: undefined } });
    expect(tlsFail.code).to.equal(1);
    expect(closed.code).to.equal(1);

    expect(viaAgent.code, viaAgent.stderr).to.equal(0);
    expect(direct.code, direct.stderr).to.equal(0);
    expect(wrong.code).to.equal(1);
    expect(wrong.stdout).to.contain('AUTH');
    expect(await sha256File(path.join(inbox, 'old/rotated.bin'))).to.equal(f.sha256);
    expect(await sha256File(path.join(inbox, 'new/rotated.bin'))).to.equal(f.sha256);

    await agent.stop();
    output.push(rp.stderr(), JSON.stringify(agent.logs), viaAgent.stdout, viaAgent.stderr, status.stdout, status.stderr,
      direct.stdout, direct.stderr, wrong.stdout, wrong.stderr, health, tlsFail.stdout, tlsFail.stderr, closed.stdout, closed.stderr);
    const all = output.join('\n');
    // The capture is real: it holds the trace-level logs of both agents and the refusal.
    expect(all).to.contain('file received').and.to.contain('refused connection').and.to.contain('heartbeat')
      .and.to.contain('connect attempt failed').and.to.contain('TLS');
    for (const t of [oldToken, newToken, wrongToken]) expect(all).to.not.contain(t);
  });
});
