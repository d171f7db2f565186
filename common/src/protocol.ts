/**
 * The request map: for each request a sender may make, its frame, its reply and their validators. The
 * Socket.IO event types, the receiver's validation and the sender's `Link.request` are all derived from it,
 * so a request cannot be added on one side only.
 */
import type {
  AbortFrame, ChunkAck, ChunkFrame, CommitAck, CommitFrame, HeartbeatFrame, IdenticalFrame, IdenticalReply, OfferAccepted,
  OfferFrame, PutFrame, PutReply, ReceivedFrame, ReceiverStatus, Reply,
} from './frames.js';
import {
  isChunkAck, isChunkFrame, isCommitAck, isCommitFrame, isHeartbeatFrame, isIdenticalFrame, isIdenticalReply, isOfferAccepted,
  isOfferFrame, isPutFrame, isPutReply, isReceiverStatus,
} from './validate.js';

interface RequestSpec<Req, Res> {
  request: (v: unknown) => v is Req;
  reply: (v: unknown) => v is Res;
}

export const Requests = {
  offer: { request: isOfferFrame, reply: isOfferAccepted } as RequestSpec<OfferFrame, OfferAccepted>,
  chunk: { request: isChunkFrame, reply: isChunkAck } as RequestSpec<ChunkFrame, ChunkAck>,
  identical: { request: isIdenticalFrame, reply: isIdenticalReply } as RequestSpec<IdenticalFrame, IdenticalReply>,
  commit: { request: isCommitFrame, reply: isCommitAck } as RequestSpec<CommitFrame, CommitAck>,
  put: { request: isPutFrame, reply: isPutReply } as RequestSpec<PutFrame, PutReply>,
  heartbeat: { request: isHeartbeatFrame, reply: isReceiverStatus } as RequestSpec<HeartbeatFrame, ReceiverStatus>,
};

export type RequestName = keyof typeof Requests;
export type RequestOf<E extends RequestName> = (typeof Requests)[E] extends RequestSpec<infer Req, unknown> ? Req : never;
export type ReplyOf<E extends RequestName> = (typeof Requests)[E] extends RequestSpec<unknown, infer Res> ? Res : never;
export const REQUEST_NAMES = Object.keys(Requests) as RequestName[];

export type ClientToServerEvents = {
  [E in RequestName]: (frame: RequestOf<E>, ack: (reply: Reply<ReplyOf<E>>) => void) => void;
} & {
  abort: (frame: AbortFrame) => void;
};

export interface ServerToClientEvents {
  /** THE confirmation: the files it names are verified, durable and published (see frames.ts). */
  received: (frames: ReceivedFrame[]) => void;
}
