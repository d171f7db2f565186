/**
 * The receiver's Prometheus metrics, in a registry of its own (several receivers in one process, as in
 * the tests, must not share counters). Everything is derived from one observation point, the outcome of
 * each request a sender makes (see Session), plus gauges read at scrape time, so the transfer code itself
 * carries no metric calls. Label values are bounded: request types, outcomes and error codes only; never
 * a file name, a path, a peer or a token.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DURATION_BUCKETS } from '@relayer/common/metrics-text';
import { isRetryable, type ChunkAck, type ChunkFrame, type ErrorCode, type IdenticalReply, type OfferAccepted, type PutFrame, type PutReply, type ReceivedFrame } from '@relayer/common';
import { MAX_LEASES } from './limits.js';

export interface ReceiverGauges {
  activeTransfers(): number;
  senders(): number;
  /** Free bytes in the receiver's folder; rejects when the folder is gone. */
  freeBytes(): Promise<number>;
}

export type RequestOutcome = { ok: true; result: object } | { ok: false; code: ErrorCode };

/** Error replies after which the sender carries on with the same transfer, so it is not over. */
function isFinalRefusal(request: string, code: ErrorCode): boolean {
  // What the sender retries (LIMIT included: it waits for a slot) does not end the transfer.
  if (isRetryable(code)) return false;
  if (request === 'chunk' && code === 'CHECKSUM') return false; // the sender re-sends that chunk
  if (request === 'commit' && code === 'OFFSET') return false; // "send the rest first"
  return request !== 'heartbeat';
}



export class ReceiverMetrics {
  readonly registry = new Registry();
  /** When each lease's offer was accepted, for the duration histogram. */
  private readonly leases = new Map<string, number>();
  private readonly bytes: Counter;
  private readonly transfers: Counter<'outcome' | 'code'>;
  private readonly errors: Counter<'request' | 'code'>;
  private readonly duration: Histogram;

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
      if (isFinalRefusal(request, outcome.code)) {
        this.transfers.inc({ outcome: 'refused', code: outcome.code });
        const lease = (frame as { lease?: unknown } | null)?.lease;
        if (typeof lease === 'string') this.leases.delete(lease);
      }
      return;
    }
    if (request === 'offer') this.started((outcome.result as OfferAccepted).lease);
    else if (request === 'chunk' && (outcome.result as ChunkAck).taken) this.bytes.inc((frame as ChunkFrame).data.length);
    else if (request === 'commit') this.ended(outcome.result as ReceivedFrame);
    else if (request === 'put') this.put(frame as PutFrame, outcome.result as PutReply);
    else if (request === 'identical') {
      const { received } = outcome.result as IdenticalReply;
      if (received) this.ended(received);
    }
  }

  /** A put's files are transfers of their own, each with its outcome (their time is the request's, not counted). */
  private put(frame: PutFrame, reply: PutReply): void {
    reply.results.forEach((r, i) => {
      if (r.ok) {
        this.transfers.inc({ outcome: r.received.unchanged ? 'unchanged' : 'published', code: 'none' });
        if (!r.received.unchanged) this.bytes.inc(frame.files[i]!.data.length);
        return;
      }
      this.errors.inc({ request: 'put', code: r.error.code });
      if (isFinalRefusal('put', r.error.code)) this.transfers.inc({ outcome: 'refused', code: r.error.code });
    });
  }

  private started(lease: string): void {
    if (this.leases.size >= MAX_LEASES) this.leases.delete(this.leases.keys().next().value!);
    this.leases.set(lease, performance.now());
  }

  private ended(received: ReceivedFrame): void {
    this.transfers.inc({ outcome: received.unchanged ? 'unchanged' : 'published', code: 'none' });
    const startedAt = this.leases.get(received.lease);
    this.leases.delete(received.lease);
    if (startedAt !== undefined) this.duration.observe((performance.now() - startedAt) / 1000);
  }

  /** Answers GET /metrics. */
}
