/**
 * The receiver's Prometheus metrics, in a registry of its own (several receivers in one process, as in
 * the tests, must not share counters). Two observation points, so the transfer code itself carries no
 * metric calls: the outcome of each request a sender makes (see Session: request errors, bytes taken),
 * and the one end event of each transfer (see transfer-end.ts: transfers by outcome, their duration);
 * plus gauges read at scrape time. Label values are bounded: request types, outcomes and error codes
 * only; never a file name, a path, a peer or a token.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DURATION_BUCKETS } from '@relayer/common/metrics-text';
import { isRetryable, type ActionResult, type ChunkAck, type ChunkFrame, type ErrorCode, type PutReply } from '@relayer/common';
import { Outcome, type TransferEnd } from './transfer/transfer-end.js';

export interface ReceiverGauges {
  activeTransfers(): number;
  senders(): number;
  /** Free bytes in the receiver's folder; rejects when the folder is gone. */
  freeBytes(): Promise<number>;
}

export type RequestOutcome = { ok: true; result: object } | { ok: false; code: ErrorCode };

export class ReceiverMetrics {
  readonly registry = new Registry();
  private readonly bytes: Counter;
  private readonly transfers: Counter<'outcome' | 'code'>;
  private readonly errors: Counter<'request' | 'code'>;
  private readonly duration: Histogram;
  private readonly actions: Counter<'action' | 'outcome'>;
  private readonly actionDuration: Histogram<'action'>;

  constructor(gauges: ReceiverGauges) {
    const registers = [this.registry];
    this.bytes = new Counter({
      name: 'relay_receiver_bytes_received_total', registers,
      help: 'File bytes taken from chunks (verified by crc32 and written); a chunk not taken (a gap or a duplicate) counts none.',
    });
    this.transfers = new Counter({
      name: 'relay_receiver_transfers_total', registers, labelNames: ['outcome', 'code'],
      help: 'Transfers that ended: outcome published, unchanged (the same bytes were already there) or refused (with its error code).',
    });
    this.errors = new Counter({
      name: 'relay_receiver_request_errors_total', registers, labelNames: ['request', 'code'],
      help: 'Error replies to senders, by request (offer, chunk, identical, commit, heartbeat) and error code, including retried ones.',
    });
    this.duration = new Histogram({
      name: 'relay_receiver_transfer_duration_seconds', registers, buckets: DURATION_BUCKETS,
      help: 'From the accepted offer (the last one, after a resume) to the published file.',
    });
    this.actions = new Counter({
      name: 'relay_receiver_actions_total', registers, labelNames: ['action', 'outcome'],
      help: 'Node actions run, by action name (a file of --action-dir) and outcome: ok, failed (non-zero exit or signal) or timeout.',
    });
    this.actionDuration = new Histogram({
      name: 'relay_receiver_action_duration_seconds', registers, labelNames: ['action'], buckets: DURATION_BUCKETS,
      help: 'How long node actions ran, by action name.',
    });
    new Gauge({
      name: 'relay_receiver_active_transfers', registers, help: 'Transfers held by a connected sender.',
      collect() {
        this.set(gauges.activeTransfers());
      },
    });
    new Gauge({
      name: 'relay_receiver_connected_senders', registers, help: 'Sender connections open now.',
      collect() {
        this.set(gauges.senders());
      },
    });
    new Gauge({
      name: 'relay_receiver_free_bytes', registers, help: 'Free bytes in the receiver\'s folder (NaN when it cannot be read).',
      async collect() {
        this.set(await gauges.freeBytes().catch(() => Number.NaN));
      },
    });
  }

  /** Called once per request, with its outcome, before the reply goes out. */
  observe(request: string, frame: unknown, outcome: RequestOutcome): void {
    if (!outcome.ok) {
      this.errors.inc({ request, code: outcome.code });
      return;
    }
    if (request === 'chunk' && (outcome.result as ChunkAck).taken) this.bytes.inc((frame as ChunkFrame).data.length);
    else if (request === 'put') this.put(outcome.result as PutReply);
  }

  /** A put's files: each refused one is an error reply of its own (its bytes are counted by its end). */
  private put(reply: PutReply): void {
    for (const r of reply.results) if (!r.ok) this.errors.inc({ request: 'put', code: r.error.code });
  }

  /** Called at each end of a transfer (see transfer-end.ts), before its sender is told. */
  /** One run of a node action (the names are the operator's files, not a sender's words: bounded). */
  actionRan(r: ActionResult): void {
    this.actions.inc({ action: r.name, outcome: r.ok ? 'ok' : r.timedOut ? 'timeout' : 'failed' });
    this.actionDuration.observe({ action: r.name }, r.durationMs / 1000);
  }

  ended(end: TransferEnd): void {
    switch (end.outcome) {
      case Outcome.PUBLISHED:
      case Outcome.UNCHANGED:
        this.transfers.inc({ outcome: end.outcome, code: 'none' });
        if (end.outcome === Outcome.PUBLISHED && end.bytes) this.bytes.inc(end.bytes);
        if (end.durationMs !== undefined) this.duration.observe(end.durationMs / 1000);
        return;
      case Outcome.REFUSED:
        // What the sender retries (LIMIT included: it waits for a slot; IO: it offers again) does not end
        // the transfer as it knows it: that one ends later, with the outcome of the retry.
        if (!isRetryable(end.code)) this.transfers.inc({ outcome: 'refused', code: end.code });
        return;
      case Outcome.SUPERSEDED:
        // Only a sender that held it is told so; an abandoned partial replaced ends no transfer of anyone's.
        if (end.lease !== undefined) this.transfers.inc({ outcome: 'refused', code: 'SUPERSEDED' });
        return;
      case Outcome.RELEASED:
        // The partial is kept: its sender resumes it, and that attachment ends it.
        return;
    }
  }
}
