import { expect } from 'chai';
import { ReceiverMetrics } from '@relayer/agent-receiver';

describe('receiver metrics: a transfer ends once, with the outcome the sender sees', () => {
  it('counts a refusal the sender retries (LIMIT, IO, DISCONNECTED, TIMEOUT, UNKNOWN_TRANSFER) as an error, not as a refused transfer', async () => {
    const m = new ReceiverMetrics({ activeTransfers: () => 0, senders: () => 0, freeBytes: async () => 1e9 });
    for (const code of ['LIMIT', 'IO', 'DISCONNECTED', 'TIMEOUT', 'UNKNOWN_TRANSFER'] as const) m.observe('offer', {}, { ok: false, code });
    m.observe('offer', {}, { ok: false, code: 'TOO_LARGE' });
    const text = await m.registry.metrics();
    expect(text).to.contain('relay_receiver_transfers_total{outcome="refused",code="TOO_LARGE"} 1');
    expect(text).to.not.match(/relay_receiver_transfers_total\{outcome="refused",code="(LIMIT|IO|DISCONNECTED|TIMEOUT|UNKNOWN_TRANSFER)"\}/);
    expect(text).to.contain('code="LIMIT"');
  });
});
