/**
 * The engine's command socket from Node: typed commands over REQ with timeouts and the zguide's Lazy Pirate.
 *
 * A REQ socket that missed its reply is stuck (it must receive before it may send again), so on a timeout it is
 * closed with linger 0 and a fresh one connected before the retry. Idle sockets are pooled so concurrent calls each
 * hold their own socket: the engine answers quick commands while a slow render runs.
 */

import * as zmq from "zeromq";

import { pack, unpackMap } from "./codec.js";
import { curveKeysFromEnv, curveSocketOptions, type CurveClientKeys } from "./curve.js";
import { ClosedError, EngineError, EngineTimeoutError, ProtocolError } from "./errors.js";
import { FrameSubscription, type SubscribeOptions } from "./frames.js";
import {
  PROTOCOL_VERSION,
  type AudioFormat,
  type Binary,
  type CommandMap,
  type CommandName,
  type Controls,
  type DropSourceReply,
  type Expression,
  type ExpressionsReply,
  type HealthReply,
  type Keyframe,
  type ListAvatarsReply,
  type RenderReply,
  type RenderRequest,
  type SetSourceReply,
  type SpeakReply,
  type SpeechMark,
  type StreamReply,
  type TimedReply,
  type TurnReply,
  type TurnState,
} from "./types.js";

export const DEFAULT_COMMAND_ADDRESS = "tcp://127.0.0.1:5555";
export const DEFAULT_FRAME_ADDRESS = "tcp://127.0.0.1:5556";

export interface EngineClientOptions {
  /** The engine's command socket (LP_COMMAND_ADDR). */
  commandAddress?: string;
  /** The engine's PUB socket (LP_FRAME_ADDR), for `subscribe`. */
  frameAddress?: string;
  /** How long one try may wait for its reply. */
  timeoutMs?: number;
  /** Tries after the first one, each on a fresh socket. */
  retries?: number;
  /** Idle sockets kept for reuse. */
  poolSize?: number;
  /**
   * CURVE keys for an engine with CURVE on (engine/security.py); absent: read from the LP_CURVE_* variables as the
   * Python client's `CurveClientKeys.from_env` reads them (none set: off; half set: ConfigError); null: off.
   */
  curve?: CurveClientKeys | null;
}

export interface CallOptions {
  timeoutMs?: number;
  retries?: number;
}

/** Any reply: known commands get their own type, others a loose map. */
export type ReplyOf<C extends string> = C extends CommandName ? CommandMap[C][1] : Record<string, unknown> & { ok: true };
export type FieldsOf<C extends string> = C extends CommandName ? CommandMap[C][0] : Record<string, unknown>;

/** engine_time = client_time + offset, measured from health's `now` at the middle of the round trip. */
export class ClockOffset {
  constructor(
    /** Seconds to add to a client time to get an engine time. */
    readonly offset: number,
    /** Round trip of the sample the offset came from (seconds): the offset is good to about half of it. */
    readonly rtt: number,
    /** The client clock the offset is relative to (seconds). */
    readonly clock: () => number,
  ) {}

  toEngine(clientTime: number): number {
    return clientTime + this.offset;
  }

  toClient(engineTime: number): number {
    return engineTime - this.offset;
  }

  /** The engine clock now, read from the client clock. */
  engineNow(): number {
    return this.clock() + this.offset;
  }
}

/** Monotonic seconds: a clock that NTP never steps. */
export const monotonicSeconds = (): number => performance.now() / 1000;

export class EngineClient {
  readonly commandAddress: string;
  readonly frameAddress: string;
  readonly timeoutMs: number;
  readonly retries: number;
  /** The CURVE keys every socket of this client uses; undefined: plain text. */
  readonly curve: CurveClientKeys | undefined;
  private readonly poolSize: number;
  private readonly idle: zmq.Request[] = [];
  private readonly busy = new Set<zmq.Request>();
  private readonly subscriptions = new Set<FrameSubscription>();
  private closed = false;

  constructor(options: EngineClientOptions = {}) {
    this.commandAddress = options.commandAddress ?? DEFAULT_COMMAND_ADDRESS;
    this.frameAddress = options.frameAddress ?? DEFAULT_FRAME_ADDRESS;
    this.timeoutMs = options.timeoutMs ?? 20_000;
    this.retries = options.retries ?? 1;
    this.poolSize = options.poolSize ?? 4;
    this.curve = options.curve === undefined ? curveKeysFromEnv() : options.curve ?? undefined;
    if (!(this.timeoutMs > 0)) throw new RangeError("timeoutMs must be > 0");
    if (!(Number.isInteger(this.retries) && this.retries >= 0)) throw new RangeError("retries must be an integer >= 0");
  }

  /**
   * Any command, known or newer than this package: sends `{v: 1, cmd, ...fields}` and returns the reply map.
   * Throws EngineError for `ok: false`, EngineTimeoutError after the retries, ProtocolError for a non-map reply.
   */
  async call<C extends string>(cmd: C, fields?: FieldsOf<C>, options: CallOptions = {}): Promise<ReplyOf<C>> {
    if (this.closed) throw new ClosedError("EngineClient");
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const tries = 1 + (options.retries ?? this.retries);
    const payload = pack({ ...(fields as Record<string, unknown> | undefined), v: PROTOCOL_VERSION, cmd });
    for (let attempt = 1; attempt <= tries; attempt++) {
      const socket = this.take(timeoutMs);
      let reply: Buffer | undefined;
      try {
        await socket.send(payload);
        [reply] = await socket.receive();
      } catch (err) {
        this.discard(socket);
        if (this.closed) throw new ClosedError("EngineClient");
        if ((err as { code?: string }).code === "EAGAIN") continue; // Lazy Pirate: a fresh socket, then retry
        throw err;
      }
      this.give(socket);
      const map = unpackMap(reply, `the engine's reply to ${cmd}`);
      if (map.ok === true) return map as ReplyOf<C>;
      if (map.ok === false) {
        const error = (map.error ?? {}) as { code?: unknown; message?: unknown };
        throw new EngineError(cmd, String(error.code ?? "internal"), String(error.message ?? "engine error"),
          typeof map.renderer === "string" ? map.renderer : undefined);
      }
      throw new ProtocolError(`the engine's reply to ${cmd} has no boolean "ok"`);
    }
    throw new EngineTimeoutError(this.commandAddress, cmd, timeoutMs, tries);
  }

  health(options?: CallOptions): Promise<HealthReply> {
    return this.call("health", {}, options);
  }

  expressions(options?: CallOptions): Promise<ExpressionsReply> {
    return this.call("expressions", {}, options);
  }

  /** Makes a portrait an avatar (face detected, features resident); the same bytes again cost a hash. */
  setSource(image: Binary, options?: CallOptions): Promise<SetSourceReply> {
    return this.call("set_source", { image }, options);
  }

  dropSource(avatar: string, options?: CallOptions): Promise<DropSourceReply> {
    return this.call("drop_source", { avatar }, options);
  }

  listAvatars(options?: CallOptions): Promise<ListAvatarsReply> {
    return this.call("list_avatars", {}, options);
  }

  setExpression(avatar: string, expression: Expression, params: { intensity?: number; transition_ms?: number } = {},
    options?: CallOptions): Promise<TimedReply> {
    return this.call("set_expression", { avatar, expression, ...params }, options);
  }

  setControls(avatar: string, controls: Controls, params: { transition_ms?: number; smooth?: boolean } = {},
    options?: CallOptions): Promise<TimedReply> {
    return this.call("set_controls", { avatar, controls, ...params }, options);
  }

  /** Controls at engine times (lip-sync): convert client times with ClockOffset.toEngine. */
  scheduleControls(avatar: string, keyframes: Keyframe[], options?: CallOptions): Promise<TimedReply> {
    return this.call("set_controls", { avatar, keyframes }, options);
  }

  /** Drops scheduled keyframes and speech (barge-in); the face eases back to its commanded expression and listens. */
  clear(avatar: string, options?: CallOptions): Promise<TurnReply> {
    return this.call("clear", { avatar }, options);
  }

  /** The avatar's turn state (idle, listening, thinking, speaking), eased in over `transition_ms`. */
  setTurn(avatar: string, state: TurnState, params: { transition_ms?: number } = {},
    options?: CallOptions): Promise<TurnReply> {
    return this.call("set_turn", { avatar, state, ...params }, options);
  }

  /**
   * One chunk (10-500 ms) of the user's microphone, little-endian int16 mono PCM: the avatar listens (nods in the
   * pauses, brows at a question). Analysed and dropped by the engine. With `interrupt`, user speech while the avatar
   * speaks is a barge-in. Not retried unless `options.retries` says so (a chunk is heard once).
   */
  userAudio(avatar: string, audio: Binary, sampleRate: number, params: { interrupt?: boolean } = {},
    options: CallOptions = {}): Promise<TurnReply> {
    return this.call("user_audio", { avatar, audio, sample_rate: sampleRate, ...params },
      { ...options, retries: options.retries ?? 0 });
  }

  /** A VAD's start (true) or stop (false) of the user's speech; same `interrupt` rule as userAudio. */
  userSpeech(avatar: string, speaking: boolean, params: { interrupt?: boolean } = {},
    options?: CallOptions): Promise<TurnReply> {
    return this.call("user_speech", { avatar, speaking, ...params }, options);
  }

  /** The avatar's default gain of speech-driven head, brow and blink motion, 0..2 (0 = lips only). */
  setSpeechMotion(avatar: string, speechMotion: number, options?: CallOptions): Promise<TimedReply> {
    return this.call("set_speech_motion", { avatar, speech_motion: speechMotion }, options);
  }

  setIdle(avatar: string, enabled: boolean, params: { seed?: number } = {}, options?: CallOptions): Promise<TimedReply> {
    return this.call("set_idle", { avatar, enabled, ...params }, options);
  }

  /** One frame in the reply (`jpeg` is a Buffer); give `avatar` or `image`. */
  render(request: RenderRequest, options?: CallOptions): Promise<RenderReply> {
    return this.call("render", request, options);
  }

  /** Starts or re-times publishing on `frame.<avatar>`; fps 0 stops it. */
  stream(avatar: string, fps?: number, options?: CallOptions): Promise<StreamReply> {
    return this.call("stream", { avatar, fps }, options);
  }

  stopStream(avatar: string, options?: CallOptions): Promise<StreamReply> {
    return this.call("stream", { avatar, fps: 0 }, options);
  }

  /**
   * Lip-sync from audio (engines with the `speak` command); `start` is an engine time. With `append` a retry could
   * queue the same audio twice, so it is not retried unless `options.retries` says so.
   */
  speak(avatar: string, audio: Binary,
    params: { format: AudioFormat; sample_rate?: number; start?: number; append?: boolean; speechMotion?: number;
      marks?: SpeechMark[] },
    options: CallOptions = {}): Promise<SpeakReply> {
    const retries = options.retries ?? (params.append ? 0 : undefined);
    const { speechMotion, ...rest } = params;
    return this.call("speak", { avatar, audio, ...rest, speech_motion: speechMotion }, { ...options, retries });
  }

  /**
   * The offset from a client clock to the engine clock: several health round trips, keeping the shortest (the
   * least queuing, so the midpoint is closest to when the engine read its clock).
   */
  async clockOffset(params: { samples?: number; clock?: () => number } = {}, options?: CallOptions):
    Promise<ClockOffset> {
    const clock = params.clock ?? monotonicSeconds;
    const samples = Math.max(1, params.samples ?? 5);
    let best: { offset: number; rtt: number } | undefined;
    for (let i = 0; i < samples; i++) {
      const sent = clock();
      const reply = await this.health(options);
      const received = clock();
      if (typeof reply.now !== "number") throw new ProtocolError("health has no numeric \"now\"");
      const rtt = received - sent;
      if (best === undefined || rtt < best.rtt) best = { offset: reply.now - (sent + received) / 2, rtt };
    }
    return new ClockOffset(best!.offset, best!.rtt, clock);
  }

  /** Frames from this engine's PUB socket; closed with the client. */
  subscribe(options: SubscribeOptions = {}): FrameSubscription {
    if (this.closed) throw new ClosedError("EngineClient");
    const sub: FrameSubscription = new FrameSubscription(this.frameAddress,
      { ...options, curve: options.curve === undefined ? this.curve ?? null : options.curve },
      () => this.subscriptions.delete(sub));
    this.subscriptions.add(sub);
    return sub;
  }

  /** Closes every socket; calls in flight reject with ClosedError. Node exits only once its sockets are closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.idle.splice(0)) s.close();
    for (const s of this.busy) s.close();
    this.busy.clear();
    for (const sub of [...this.subscriptions]) sub.close();
  }

  private take(timeoutMs: number): zmq.Request {
    let socket = this.idle.pop();
    if (socket === undefined) {
      socket = new zmq.Request({ linger: 0, ...curveSocketOptions(this.curve) });
      socket.connect(this.commandAddress);
    }
    socket.receiveTimeout = timeoutMs;
    socket.sendTimeout = timeoutMs;
    this.busy.add(socket);
    return socket;
  }

  private give(socket: zmq.Request): void {
    this.busy.delete(socket);
    if (this.closed || this.idle.length >= this.poolSize) socket.close();
    else this.idle.push(socket);
  }

  private discard(socket: zmq.Request): void {
    this.busy.delete(socket);
    if (!socket.closed) socket.close();
  }
}
