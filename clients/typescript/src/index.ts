/** @secretary/liveportrait-client: the liveportrait-engine's ZeroMQ protocol v1 and its HTTP bridge, typed. */

export * from "./types.js";
export * from "./errors.js";
export { pack, unpackMap } from "./codec.js";
export {
  CLIENT_SECRET_ENV,
  CLIENT_SECRET_FILE_ENV,
  curveClientKeys,
  curveKeysFromEnv,
  curvePublicKey,
  readCertificate,
  SERVER_PUBLIC_ENV,
  SERVER_PUBLIC_FILE_ENV,
  z85Decode,
  z85Encode,
  type CurveClientKeys,
  type CurveSources,
} from "./curve.js";
export { FrameReader, FrameSubscription, FRAME_TOPIC_PREFIX, parseFrame, subscribeFrames, type SubscribeOptions } from "./frames.js";
export {
  ClockOffset,
  DEFAULT_COMMAND_ADDRESS,
  DEFAULT_FRAME_ADDRESS,
  EngineClient,
  monotonicSeconds,
  type CallOptions,
  type EngineClientOptions,
  type FieldsOf,
  type ReplyOf,
} from "./client.js";
export {
  DEFAULT_BRIDGE_URL,
  LivePortraitRenderer,
  type LivePortraitRendererOptions,
  type RenderInfo,
  type RenderParams,
} from "./http.js";
export { ClusterFrameSubscription, type ClusterReplica, type ClusterStatus, type ClusterSubscribeOptions } from "./cluster.js";
