import { expect } from 'chai';
import { ErrorCode } from '@relayer/common';
import { parseDiscover, parseListen, resolveSenderAgentOptions, SENDER_AGENT_DEFAULTS, systemResolver } from '@relayer/agent-sender';
import { expectThrowsCode } from '../support/util.js';

describe('sender agent options: --discover and --http', () => {
  it('parses repeated and comma-separated --discover entries', () => {
    expect(parseDiscover(['tasks.receiver:7420', 'a:1, b-2.x:65535'])).to.deep.equal([
      { host: 'tasks.receiver', port: 7420 }, { host: 'a', port: 1 }, { host: 'b-2.x', port: 65535 },
    ]);
  });

  for (const bad of ['tasks.receiver', 'x:', ':7420', 'x:y', 'http://x:7420', 'x:123456']) {
    it(`refuses --discover ${JSON.stringify(bad)} with USAGE`, () => {
      expectThrowsCode(() => parseDiscover([bad]), ErrorCode.USAGE);
    });
  }

  it('refuses a discover port out of range and an interval or grace out of bounds', () => {
    expectThrowsCode(() => resolveSenderAgentOptions({ token: 't', discover: [{ host: 'x', port: 70000 }] }), ErrorCode.USAGE);
    expectThrowsCode(() => resolveSenderAgentOptions({ token: 't', discoverEveryMs: 10 }), ErrorCode.USAGE);
    expectThrowsCode(() => resolveSenderAgentOptions({ token: 't', discoverEveryMs: 2 * 3_600_000 }), ErrorCode.USAGE);
    expectThrowsCode(() => resolveSenderAgentOptions({ token: 't', discoverGraceMs: -1 }), ErrorCode.USAGE);
    expectThrowsCode(() => resolveSenderAgentOptions({ token: 't', discoverGraceMs: 2 * 3_600_000 }), ErrorCode.USAGE);
    expect(resolveSenderAgentOptions({ token: 't', discoverGraceMs: 0 }).discoverGraceMs).to.equal(0);
  });

  it('has documented defaults: no discovery, every 10s, a 60s grace for receivers that left DNS, the system resolver, no http listener', () => {
    const o = resolveSenderAgentOptions({ token: 't' });
    expect(o).to.include({ discoverEveryMs: 10_000, discoverGraceMs: 60_000, discoverProbeTimeoutMs: 3000, resolver: systemResolver });
    expect(o.http).to.equal(undefined);
    expect(o.discover).to.deep.equal([]);
    expect(SENDER_AGENT_DEFAULTS.discoverEveryMs).to.equal(10_000);
  });

  it('parses --http host:port, [v6]:port and :port', () => {
    expect(parseListen('127.0.0.1:7421')).to.deep.equal({ host: '127.0.0.1', port: 7421 });
    expect(parseListen('[::1]:0')).to.deep.equal({ host: '::1', port: 0 });
    expect(parseListen(':7421')).to.deep.equal({ host: '0.0.0.0', port: 7421 });
    for (const bad of ['7421', 'host', 'a:b', '::1:7421']) expectThrowsCode(() => parseListen(bad), ErrorCode.USAGE);
  });
});
