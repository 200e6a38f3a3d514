/**
 * Frames from the engine's PUB socket as an async iterator. Each message is [topic, msgpack header, jpeg] with
 * topic `frame.<avatar>`. A slow reader loses frames at the high-water mark instead of slowing the engine, so the
 * iterator always yields recent frames; `skipped` counts messages that were not frames (never thrown, so one bad
 * message cannot end a subscription).
 */

import * as zmq from "zeromq";

import { toBuffer, unpackMap } from "./codec.js";
import { curveKeysFromEnv, curveSocketOptions, type CurveClientKeys } from "./curve.js";
import { LivePortraitError } from "./errors.js";
import type { Frame, FrameHeader } from "./types.js";

export const FRAME_TOPIC_PREFIX = "frame.";

export interface SubscribeOptions {
  /** One avatar's frames (its id, as in `stream`'s reply); all avatars when absent. */
  avatar?: string;
  /** Throw a LivePortraitError with code "timeout" when no frame arrives for this long; wait forever when absent. */
  receiveTimeoutMs?: number;
  /** Messages buffered before the oldest are dropped (the engine's own PUB keeps 4). */
  highWaterMark?: number;
  /** CURVE keys for an engine with CURVE on; absent: from the LP_CURVE_* variables (curve.ts); null: off. */
  curve?: CurveClientKeys | null;
}

/**
 * The receive loop every subscription shares: frames off one SUB socket, what is not a frame counted in `skipped`
 * and passed over, done once closed. A subclass says what a failed receive becomes and what it lets go on close.
 */
export abstract class FrameReader implements AsyncIterableIterator<Frame> {
  skipped = 0;
  protected closed = false;

  protected constructor(protected readonly socket: zmq.Subscriber) {}

  /** The error a failed receive becomes while the subscription is open. */
  protected abstract failed(err: unknown): unknown;

  /** What else to let go on close, after the socket. */
  protected released(): void {}

  /** The next frame; `done` once the subscription is closed. */
  async next(): Promise<IteratorResult<Frame, undefined>> {
    while (!this.closed) {
      let parts: Buffer[];
      try {
        parts = await this.socket.receive();
      } catch (err) {
        if (this.closed) break;
        throw this.failed(err);
      }
      const frame = parseFrame(parts);
      if (frame === undefined) {
        this.skipped += 1;
        continue;
      }
      return { value: frame, done: false };
    }
    return { value: undefined, done: true };
  }

  /** Ends the iteration (a `break` out of `for await` calls this). */
  async return(): Promise<IteratorResult<Frame, undefined>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    this.released();
  }
}

export class FrameSubscription extends FrameReader {
  readonly address: string;
  readonly topic: string;
  private readonly onClose: (() => void) | undefined;

  /** `onClose` lets an owner (EngineClient) forget the subscription once it is closed. */
  constructor(address: string, options: SubscribeOptions = {}, onClose?: () => void) {
    super(new zmq.Subscriber({
      linger: 0,
      receiveHighWaterMark: options.highWaterMark ?? 8,
      receiveTimeout: options.receiveTimeoutMs ?? -1,
      ...curveSocketOptions(options.curve === undefined ? curveKeysFromEnv() : options.curve ?? undefined),
    }));
    this.address = address;
    this.onClose = onClose;
    this.topic = FRAME_TOPIC_PREFIX + (options.avatar ?? "");
    this.socket.connect(address);
    this.socket.subscribe(this.topic);
  }

  protected override failed(err: unknown): unknown {
    if ((err as { code?: string }).code === "EAGAIN") {
      return new LivePortraitError("timeout", `no frame on ${this.address} (${this.topic}) in time`, { cause: err });
    }
    return err;
  }

  protected override released(): void {
    this.onClose?.();
  }
}

/** One PUB message to a Frame, or undefined when it is not [frame.<avatar>, header map, jpeg]. */
export function parseFrame(parts: Uint8Array[]): Frame | undefined {
  if (parts.length !== 3) return undefined;
  const topic = toBuffer(parts[0]).toString("utf8");
  if (!topic.startsWith(FRAME_TOPIC_PREFIX)) return undefined;
  let header: Record<string, unknown>;
  try {
    header = unpackMap(parts[1], "frame header");
  } catch {
    return undefined;
  }
  return {
    topic,
    avatar: topic.slice(FRAME_TOPIC_PREFIX.length),
    header: header as FrameHeader,
    jpeg: toBuffer(parts[2]),
  };
}

/** Subscribe to frames on a PUB address: `for await (const frame of subscribeFrames(addr, {avatar})) ...`. */
export function subscribeFrames(address: string, options: SubscribeOptions = {}): FrameSubscription {
  return new FrameSubscription(address, options);
}
