/**
 * The sender agent's Prometheus metrics, in a registry of its own (several agents in one test process
 * must not share counters). They are fed from what the agent already sees, so the transfer code carries
 * no metric calls: each job's event stream (outcomes, durations), each running transfer's progress and
 * state events (bytes), and the links read at scrape time (states, heartbeat RTT). Label values are
 * bounded: receiver names, outcomes and error codes; never a file name, a path or a token.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DURATION_BUCKETS } from '@relayer/common/metrics-text';
import type { JobEvent } from '../job/job-events.js';
import { LinkState, type Link } from '../link/link.js';
import { OutgoingState, type OutgoingTransfer, type Progress } from '../transfer/outgoing-transfer.js';

export interface SenderGauges {
  links(): Iterable<Link>;
  activeTransfers(): number;
}


export class SenderMetrics {
  readonly registry = new Registry();
  private readonly bytes: Counter<'receiver'>;
  private readonly transfers: Counter<'receiver' | 'outcome' | 'code'>;
  private readonly duration: Histogram<'receiver'>;
  /** Per running transfer: the acked offset its bytes have been counted to. */
  private readonly counted = new Map<OutgoingTransfer, { to: number; onProgress: (p: Progress) => void; onState: (s: OutgoingState) => void }>();

  constructor(gauges: SenderGauges) {
    const registers = [this.registry];
    this.bytes = new Counter({
      name: 'relay_sender_bytes_sent_total', registers, labelNames: ['receiver'],
      help: 'File bytes sent and acknowledged by each receiver (a chunk sent twice counts once; an unchanged file counts none).',
    });
    this.transfers = new Counter({
      name: 'relay_sender_transfers_total', registers, labelNames: ['receiver', 'outcome', 'code'],
      help: 'Transfers that ended, by receiver, outcome (confirmed, unchanged, failed, cancelled) and error code (none when confirmed).',
    });
    this.duration = new Histogram({
      name: 'relay_sender_transfer_duration_seconds', registers, labelNames: ['receiver'], buckets: DURATION_BUCKETS,
      help: 'From the start of a transfer (after any queue) to its confirmation, retries and resumes included.',
    });
    new Gauge({
      name: 'relay_sender_active_transfers', registers, help: 'Transfers running now, over all jobs.',
      collect() {
        this.set(gauges.activeTransfers());
      },
    });
    new Gauge({
      name: 'relay_sender_receivers', registers, labelNames: ['state'],
      help: 'Receivers by link state: connected, stale (heartbeats unanswered) or disconnected.',
      collect() {
        const counts: Record<string, number> = { [LinkState.CONNECTED]: 0, [LinkState.STALE]: 0, [LinkState.DISCONNECTED]: 0 };
        for (const l of gauges.links()) if (l.state in counts) counts[l.state]!++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'relay_sender_receiver_up', registers, labelNames: ['receiver'],
      help: '1 while the link to this receiver is connected (or stale), 0 while it is down.',
      collect() {
        this.reset();
        for (const l of gauges.links()) this.set({ receiver: l.name }, l.connected ? 1 : 0);
      },
    });
    new Gauge({
      name: 'relay_sender_heartbeat_rtt_seconds', registers, labelNames: ['receiver'],
      help: 'Round-trip time of the last answered heartbeat, per connected receiver.',
      collect() {
        this.reset();
        for (const l of gauges.links()) if (l.connected && l.rttMs !== null) this.set({ receiver: l.name }, l.rttMs / 1000);
      },
    });
  }

  /**
   * Follows a running transfer's acked offset. Bytes count only while it is sending: an offer's resume
   * offset and an unchanged file's confirmation move `acked` without sending anything.
   */
  track(t: OutgoingTransfer, running: boolean): void {
    const prev = this.counted.get(t);
    if (!running) {
      if (prev) {
        t.off('progress', prev.onProgress);
        t.off('state', prev.onState);
        this.counted.delete(t);
      }
      return;
    }
    if (prev) return;
    const entry = {
      to: t.acked,
      onProgress: (p: Progress): void => {
        if (t.state === OutgoingState.SENDING && p.acked > entry.to) this.bytes.inc({ receiver: t.receiver }, p.acked - entry.to);
        entry.to = p.acked;
      },
      onState: (s: OutgoingState): void => {
        if (s === OutgoingState.SENDING) entry.to = t.acked;
      },
    };
    t.on('progress', entry.onProgress);
    t.on('state', entry.onState);
    this.counted.set(t, entry);
  }

  /** Sees every event of every job the agent runs. */
  onJobEvent(e: JobEvent): void {
    if (e.type === 'received') {
      // A file that travelled whole had no progress events: its bytes count here.
      if (e.small && !e.unchanged) this.bytes.inc({ receiver: e.target }, e.size);
      this.transfers.inc({ receiver: e.target, outcome: e.unchanged ? 'unchanged' : 'confirmed', code: 'none' });
      this.duration.observe({ receiver: e.target }, e.elapsedMs / 1000);
    } else if (e.type === 'failed') {
      this.transfers.inc({ receiver: e.target, outcome: e.code === 'CANCELLED' ? 'cancelled' : 'failed', code: e.code });
    }
  }
}
