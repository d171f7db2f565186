import { EventEmitter } from 'node:events';
import { expect } from 'chai';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import type { Logger } from '@relayer/common';
import { FaultProxy } from '../support/proxy.js';
import { closeAll, startLink, startReceiver, track, waitFor } from '../support/util.js';

interface LogLine {
  msg: string;
  reason?: string;
  missed?: number;
}

/** A logger whose lines are parsed and emitted, so a test waits on what the receiver says, not on time. */
function receiverLog(): { logger: Logger; waitMsg: (msg: string | RegExp) => Promise<LogLine> } {
  const bus = new EventEmitter();
  const seen: LogLine[] = [];
  const logger = pino({ level: 'debug' }, {
    write: (s: string) => {
      const line = JSON.parse(s) as LogLine;
      seen.push(line);
      bus.emit('line', line);
    },
  });
  const matches = (l: LogLine, msg: string | RegExp): boolean => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg));
  return {
    logger,
    waitMsg: async (msg) => seen.find((l) => matches(l, msg)) ?? (await waitFor<[LogLine]>(bus, 'line', (l) => matches(l, msg)))[0],
  };
}

describe('receiver logs: live status of its senders', () => {
  afterEach(closeAll);

  it('logs a sender as stale after 3 missed heartbeats and as resumed when they come back', async () => {
    const log = receiverLog();
    const r = await startReceiver({ logger: log.logger });
    const proxy = new FaultProxy(r.address().port);
    await proxy.start();
    track(() => proxy.close());
    startLink(proxy.url, { heartbeatMs: 100 });
    await log.waitMsg('heartbeat');
    proxy.freeze();
    const stale = await log.waitMsg(/^sender stale/);
    expect(stale.missed).to.equal(3);
    proxy.thaw();
    await log.waitMsg('sender heartbeats resumed');
  });

  it('logs why it closed a connection that sent a malformed packet before its handshake', async () => {
    const log = receiverLog();
    const r = await startReceiver({ logger: log.logger });
    const ws = new WebSocket(`ws://127.0.0.1:${r.address().port}/socket.io/?EIO=4&transport=websocket`);
    track(() => ws.terminate());
    await waitFor(ws, 'message');
    ws.send(Buffer.from([0xc1, 0xc1, 0xc1]));
    await waitFor(ws, 'close');
    const line = await log.waitMsg('malformed packet: closing that connection');
    expect(line.reason).to.match(/invalid packet/);
  });
});
