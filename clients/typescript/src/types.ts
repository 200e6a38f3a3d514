/**
 * Engine protocol v1 (docs/protocol.md), as TypeScript types: one request and one reply type per command.
 * Binary fields travel as msgpack `bin`; they decode to Uint8Array (the client hands back Buffers).
 */

export const PROTOCOL_VERSION = 1 as const;

export type Expression = "neutral" | "happy" | "sad" | "surprised";
export type RendererName = "liveportrait" | "offline" | "starting";
export type OutputKind = "full" | "crop";
export type Binary = Uint8Array;

/** Every wire error code the engine sends (engine/errors.py); unknown future codes stay plain strings. */
export type ErrorCode =
  | "bad_request"
  | "unsupported_version"
  | "unknown_command"
  | "invalid_image"
  | "image_too_large"
  | "no_face"
  | "unknown_avatar"
  | "busy"
  | "models_missing"
  | "weights_invalid"
  | "render_failed"
  | "internal";

/** The continuous controls of docs/animation.md; other names are allowed so newer engines need no release. */
export type ControlName =
  | "mouthSmile" | "mouthFrown" | "browInnerUp" | "browOuterUp" | "browDown" | "eyeBlink" | "eyeWide"
  | "jawOpen" | "mouthPucker" | "mouthFunnel" | "headYaw" | "headPitch" | "headRoll" | "gazeX" | "gazeY"
  | "mouthSmileLeft" | "mouthSmileRight" | "mouthFrownLeft" | "mouthFrownRight" | "browOuterUpLeft"
  | "browOuterUpRight" | "browDownLeft" | "browDownRight" | "eyeBlinkLeft" | "eyeBlinkRight" | "eyeWideLeft"
  | "eyeWideRight"
  // speech articulation (docs/speech.md)
  | "mouthUpperUp" | "mouthLowerDown" | "mouthPress" | "mouthRollLower" | "mouthStretch" | "mouthUpperUpLeft"
  | "mouthUpperUpRight" | "mouthLowerDownLeft" | "mouthLowerDownRight" | "mouthPressLeft" | "mouthPressRight"
  | "mouthStretchLeft" | "mouthStretchRight";
export type Controls = Partial<Record<ControlName, number>> & Record<string, number>;

export interface Keyframe {
  /** Engine time in seconds (see ClockOffset.toEngine). */
  t: number;
  controls: Controls;
}

export interface WireError {
  code: ErrorCode | string;
  message: string;
}

/** Fields every successful reply carries. */
export interface ReplyBase {
  ok: true;
  renderer: RendererName;
  [extra: string]: unknown;
}

export interface StreamInfo {
  fps: number;
  seq: number;
  late: number;
}

export interface FrameTimings {
  published: number;
  dropped: number;
  render_ms_p50?: number;
  render_ms_p95?: number;
  overhead_ms_p50?: number;
  overhead_ms_p95?: number;
  render_ms_mean?: number;
  [extra: string]: unknown;
}

export interface HealthReply extends ReplyBase {
  status: "starting" | "ok" | "failed";
  version: number;
  /** Engine clock (time.monotonic() seconds). */
  now: number;
  renderer_reason?: string;
  renderer_info?: Record<string, unknown>;
  face_detector?: string;
  face_detector_reason?: string;
  avatars?: number;
  default_avatar?: string;
  streams?: Record<string, StreamInfo>;
  frames?: FrameTimings;
  caches?: Record<string, Record<string, unknown>>;
  failure?: WireError;
  /** Each resident avatar's turn state. */
  turns?: Record<string, TurnState>;
}

export interface ControlRange {
  name: string;
  min: number;
  max: number;
  [extra: string]: unknown;
}

export interface ExpressionsReply extends ReplyBase {
  expressions: Expression[];
  intensities: { min: number; max: number };
  controls: ControlRange[];
}

export interface SetSourceRequest {
  image: Binary;
}
export interface SetSourceReply extends ReplyBase {
  avatar: string;
  cached: boolean;
  faces: number;
  detector: string;
  width: number;
  height: number;
}

export interface AvatarReply extends ReplyBase {
  avatar: string;
}
export type DropSourceReply = AvatarReply;

export interface ListAvatarsReply extends ReplyBase {
  avatars: string[];
  default: string;
  streams: Record<string, StreamInfo>;
  /** Each resident avatar's turn state. */
  turns?: Record<string, TurnState>;
}

/** Replies of the animation commands: the avatar and the engine time the command took effect. */
export interface TimedReply extends AvatarReply {
  now: number;
}

export interface SetExpressionRequest {
  avatar: string;
  expression: Expression;
  intensity?: number;
  /** 0..10000, default 250. */
  transition_ms?: number;
}

export interface SetControlsRequest {
  avatar: string;
  controls?: Controls;
  keyframes?: Keyframe[];
  transition_ms?: number;
  smooth?: boolean;
}

export interface SetIdleRequest {
  avatar: string;
  enabled: boolean;
  seed?: number;
}

export interface RenderRequest {
  /** An avatar id (or "default"), or give `image` instead (set_source first). */
  avatar?: string;
  image?: Binary;
  expression?: Expression;
  intensity?: number;
  controls?: Controls;
  output?: OutputKind;
  /** JPEG quality 1..100. */
  quality?: number;
}

export interface FrameHeader {
  seq: number;
  /** The tick's engine time (seconds). */
  ts: number;
  /** Unix time at publish (seconds). */
  wall: number;
  avatar: string;
  expression: Expression | string;
  intensity: number;
  width: number;
  height: number;
  render_ms: number;
  renderer: RendererName;
  late: number;
  cached: boolean;
  [extra: string]: unknown;
}

export interface RenderReply extends AvatarReply {
  cached: boolean;
  jpeg: Buffer;
  header: FrameHeader;
}

export interface StreamReply extends AvatarReply {
  fps: number;
  topic: string;
}

export type AudioFormat = "wav" | "pcm_s16le" | "pcm_f32le";

export interface SpeakRequest {
  avatar: string;
  audio: Binary;
  format: AudioFormat;
  /** Needed for raw PCM. */
  sample_rate?: number;
  /** Engine time the audio starts at (default: now). */
  start?: number;
  /** Queue after the speech already scheduled instead of replacing it. */
  append?: boolean;
  /** This audio's gain of speech-driven head, brow and blink motion, 0..2 (default: the avatar's). */
  speech_motion?: number;
  /** Expressions on the words, offsets into this audio. */
  marks?: SpeechMark[];
}

/** An expression put on a word: `t` seconds from the start of this audio (engines with marks, issue 22). */
export interface SpeechMark {
  t: number;
  expression: Expression;
  intensity?: number;
  controls?: Controls;
  transition_ms?: number;
}

/** The avatar's part in the conversation (docs/protocol.md, set_turn). */
export type TurnState = "idle" | "listening" | "thinking" | "speaking";

/** set_turn, user_audio, user_speech and clear: the turn state after the command. */
export interface TurnReply extends TimedReply {
  turn: TurnState;
}

export interface SetTurnRequest {
  avatar: string;
  state: TurnState;
  transition_ms?: number;
}

export interface UserAudioRequest {
  avatar: string;
  /** 10-500 ms of the user's microphone: little-endian int16 mono PCM. Analysed and dropped, never stored. */
  audio: Binary;
  sample_rate: number;
  /** User speech while the avatar speaks is a barge-in (as clear). */
  interrupt?: boolean;
}

export interface UserSpeechRequest {
  avatar: string;
  speaking: boolean;
  interrupt?: boolean;
}

export interface SetSpeechMotionRequest {
  avatar: string;
  /** 0..2: gain of speech-driven head, brow and blink motion (0 = lips only). */
  speech_motion: number;
}

export interface SpeakReply extends AvatarReply {
  start: number;
  end: number;
  duration: number;
}

/** Command name to [request fields, reply] so `call` is typed for known commands. */
export interface CommandMap {
  health: [Record<string, never>, HealthReply];
  expressions: [Record<string, never>, ExpressionsReply];
  set_source: [SetSourceRequest, SetSourceReply];
  drop_source: [{ avatar: string }, DropSourceReply];
  list_avatars: [Record<string, never>, ListAvatarsReply];
  set_expression: [SetExpressionRequest, TimedReply];
  set_controls: [SetControlsRequest, TimedReply];
  clear: [{ avatar: string }, TurnReply];
  set_idle: [SetIdleRequest, TimedReply];
  render: [RenderRequest, RenderReply];
  stream: [{ avatar: string; fps?: number }, StreamReply];
  speak: [SpeakRequest, SpeakReply];
  set_turn: [SetTurnRequest, TurnReply];
  user_audio: [UserAudioRequest, TurnReply];
  user_speech: [UserSpeechRequest, TurnReply];
  set_speech_motion: [SetSpeechMotionRequest, TimedReply];
}
export type CommandName = keyof CommandMap;

/** A frame from the PUB socket: [topic, msgpack header, jpeg]. */
export interface Frame {
  topic: string;
  avatar: string;
  header: FrameHeader;
  jpeg: Buffer;
}
