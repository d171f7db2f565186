/**
 * A link's heartbeat: a beat every `everyMs` while connected, each answered with the receiver's status.
 * Stale means the last `staleAfter` beats went unanswered, counted when beats are sent (not by reply
 * timeouts), so a receiver that stops answering is noticed within staleAfter intervals whatever the RTT.
 */
import type { ReceiverStatus } from '@relayer/common';

export interface HeartbeatOptions {
  everyMs: number;
  staleAfter: number;
  /** The connection can carry a beat now. */
  alive(): boolean;
  /** Sends beat `seq` and resolves with the receiver's answer (rejects when none comes). */
  send(seq: number, sentAt: number): Promise<ReceiverStatus>;
  /** Beat answered (the latest one only; late answers to older beats are not news). */
  onAnswer(rttMs: number, status: ReceiverStatus): void;
  onUnanswered(beats: number): void;
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private answered = 0;

  constructor(private readonly opts: HeartbeatOptions) {}

  /** (Re)starts beating on a new connection: earlier unanswered beats do not count against it. */
  start(): void {
    this.stop();
    if (!(this.opts.everyMs > 0)) return;
    this.answered = this.seq;
    this.timer = setInterval(() => this.beat(), this.opts.everyMs);
    this.beat();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private beat(): void {
    if (!this.opts.alive()) return;
    const seq = ++this.seq;
    const sentAt = Date.now();
    this.opts.send(seq, sentAt).then(
      (status) => {
        if (status.seq !== seq) return;
        this.answered = Math.max(this.answered, seq);
        this.opts.onAnswer(Date.now() - sentAt, status);
      },
      () => undefined,
    );
    const unanswered = seq - 1 - this.answered;
    if (unanswered >= this.opts.staleAfter) this.opts.onUnanswered(unanswered);
  }
}
