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
import type {
  ActionCheckFrame, DiscardFrame, ListReleasesFrame, ListReleasesReply, ReleaseFrame, ReleaseReply, RollbackFrame, RollbackReply,
  RunFrame, RunReply, StageFrame, StageReply, SwitchFrame, SwitchReply,
} from './release-frames.js';
import {
  isActionCheckFrame, isDiscardFrame, isEmptyReply, isListReleasesFrame, isListReleasesReply, isReleaseFrame, isReleaseReply,
  isRollbackFrame, isRollbackReply, isRunFrame, isRunReply, isStageFrame, isStageReply, isSwitchFrame, isSwitchReply,
} from './release-frames.js';

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
  release: { request: isReleaseFrame, reply: isReleaseReply } as RequestSpec<ReleaseFrame, ReleaseReply>,
  stage: { request: isStageFrame, reply: isStageReply } as RequestSpec<StageFrame, StageReply>,
  switch: { request: isSwitchFrame, reply: isSwitchReply } as RequestSpec<SwitchFrame, SwitchReply>,
  rollback: { request: isRollbackFrame, reply: isRollbackReply } as RequestSpec<RollbackFrame, RollbackReply>,
  discard: { request: isDiscardFrame, reply: isEmptyReply } as RequestSpec<DiscardFrame, Record<string, never>>,
  releases: { request: isListReleasesFrame, reply: isListReleasesReply } as RequestSpec<ListReleasesFrame, ListReleasesReply>,
  action: { request: isActionCheckFrame, reply: isEmptyReply } as RequestSpec<ActionCheckFrame, Record<string, never>>,
  run: { request: isRunFrame, reply: isRunReply } as RequestSpec<RunFrame, RunReply>,
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
