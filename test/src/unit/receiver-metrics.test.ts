import { expect } from 'chai';
import { Outcome, Release, ReceiverMetrics } from '@relayer/agent-receiver';

const metrics = (): ReceiverMetrics => new ReceiverMetrics({ activeTransfers: () => 0, senders: () => 0, freeBytes: async () => 1e9 });

describe('receiver metrics: a transfer ends once, with the outcome the sender sees', () => {
  it('counts a refusal the sender retries (LIMIT, IO, DISCONNECTED, TIMEOUT, UNKNOWN_TRANSFER) as an error, not as a refused transfer', async () => {
    const m = metrics();
    // What the registry reports for an offer refused before it had a transfer, beside the request's error reply.
    for (const code of ['LIMIT', 'IO', 'DISCONNECTED', 'TIMEOUT', 'UNKNOWN_TRANSFER', 'TOO_LARGE'] as const) {
      m.ended({ outcome: Outcome.REFUSED, code });
      m.observe('offer', {}, { ok: false, code });
    }
    const text = await m.registry.metrics();
    expect(text).to.contain('relay_receiver_transfers_total{outcome="refused",code="TOO_LARGE"} 1');
    expect(text).to.not.match(/relay_receiver_transfers_total\{outcome="refused",code="(LIMIT|IO|DISCONNECTED|TIMEOUT|UNKNOWN_TRANSFER)"\}/);
    expect(text).to.contain('relay_receiver_request_errors_total{request="offer",code="LIMIT"} 1');
  });

  it('counts transfers from their end events only: request replies alone count errors and bytes, never a transfer', async () => {
    const m = metrics();
    m.observe('commit', { lease: 'l1', sha256: 'x' }, { ok: true, result: { lease: 'l1', unchanged: false } });
    m.observe('commit', { lease: 'l2' }, { ok: false, code: 'CHECKSUM' });
    expect(await m.registry.metrics()).to.not.match(/relay_receiver_transfers_total\{/);
    m.ended({ outcome: Outcome.PUBLISHED, lease: 'l1', durationMs: 1500 });
    m.ended({ outcome: Outcome.UNCHANGED });
    m.ended({ outcome: Outcome.REFUSED, code: 'CHECKSUM', lease: 'l2' });
    const text = await m.registry.metrics();
    expect(text).to.contain('relay_receiver_transfers_total{outcome="published",code="none"} 1');
    expect(text).to.contain('relay_receiver_transfers_total{outcome="unchanged",code="none"} 1');
    expect(text).to.contain('relay_receiver_transfers_total{outcome="refused",code="CHECKSUM"} 1');
    // A put's file has no attach to time from: only the published transfer is in the histogram.
    expect(text).to.contain('relay_receiver_transfer_duration_seconds_count 1');
    expect(text).to.contain('relay_receiver_transfer_duration_seconds_sum 1.5');
  });

  it('a superseded transfer counts once as refused SUPERSEDED when a sender held it; a released one (partial kept) not at all', async () => {
    const m = metrics();
    m.ended({ outcome: Outcome.RELEASED, why: Release.CONNECTION_LOST, lease: 'a' });
    m.ended({ outcome: Outcome.SUPERSEDED });
    m.ended({ outcome: Outcome.SUPERSEDED, lease: 'b' });
    const text = await m.registry.metrics();
    expect(text).to.contain('relay_receiver_transfers_total{outcome="refused",code="SUPERSEDED"} 1');
    expect(text).to.not.contain('outcome="released"');
  });
});
