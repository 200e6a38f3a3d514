/**
 * Frames of every replica of a cluster (`liveportrait-cluster`, docs/scaling.md) on one SUB socket. The frame
 * addresses are health's `cluster.replicas[].frame_addr` on the cluster's command address, read again every
 * `refreshMs`: a new replica is connected, a gone one disconnected (a SUB may connect to many PUBs). On a single
 * engine (no `cluster` in health) `fallbackAddress` is used. A moved avatar's frames carry a higher `header.epoch`,
 * and their `seq` starts again.
 */

import * as zmq from "zeromq";

import { EngineClient } from "./client.js";
import { curveKeysFromEnv, curveSocketOptions, type CurveClientKeys } from "./curve.js";
import { LivePortraitError } from "./errors.js";
import { FRAME_TOPIC_PREFIX, FrameReader } from "./frames.js";

/** One replica as health's (and the bridge's /status) `cluster.replicas` lists it. */
export interface ClusterReplica {
  id: string;
  node: string;
  pid: number;
  command_addr: string;
  frame_addr: string;
  avatars: string[];
  streams: number;
  frames: number;
  [extra: string]: unknown;
}

export interface ClusterStatus {
  command_addr: string;
  replicas: ClusterReplica[];
  [extra: string]: unknown;
}

export interface ClusterSubscribeOptions {
  /** One avatar's frames; all avatars when absent. */
  avatar?: string;
  /** How often the replica list is read again (default 1000 ms). */
  refreshMs?: number;
  /** The frame address when the command address is a single engine. */
  fallbackAddress?: string;
  highWaterMark?: number;
  /**
   * CURVE keys for a cluster with CURVE on, used by both the frame socket and the replica-list reads; absent: from
   * the LP_CURVE_* variables (curve.ts), as the Python `ClusterFrameSubscriber` takes them; null: off.
   */
  curve?: CurveClientKeys | null;
}

export class ClusterFrameSubscription extends FrameReader {
  readonly commandAddress: string;
  /** The frame addresses connected now. */
  readonly addresses = new Set<string>();
  private readonly health: EngineClient;
  private readonly fallback: string | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  /** Use `ClusterFrameSubscription.open`, which reads the replica list once before returning. */
  constructor(commandAddress: string, options: ClusterSubscribeOptions = {}) {
    const curve = options.curve === undefined ? curveKeysFromEnv() : options.curve ?? undefined;
    super(new zmq.Subscriber({ linger: 0, receiveHighWaterMark: options.highWaterMark ?? 16,
      ...curveSocketOptions(curve) }));
    this.commandAddress = commandAddress;
    this.fallback = options.fallbackAddress;
    this.socket.subscribe(FRAME_TOPIC_PREFIX + (options.avatar ?? ""));
    this.health = new EngineClient({ commandAddress, timeoutMs: 2000, retries: 0, poolSize: 1, curve: curve ?? null });
  }

  static async open(commandAddress: string, options: ClusterSubscribeOptions = {}): Promise<ClusterFrameSubscription> {
    const sub = new ClusterFrameSubscription(commandAddress, options);
    await sub.refresh();
    sub.timer = setInterval(() => void sub.refresh(), options.refreshMs ?? 1000);
    return sub;
  }

  /** Read the replica list now and follow it; a missed health keeps the list as it is. */
  async refresh(): Promise<ReadonlySet<string>> {
    if (this.closed) return this.addresses;
    let cluster: ClusterStatus | undefined;
    try {
      const reply = (await this.health.call("health")) as { cluster?: ClusterStatus };
      cluster = reply.cluster;
    } catch {
      return this.addresses;
    }
    if (this.closed) return this.addresses;
    const wanted = new Set<string>((cluster?.replicas ?? []).map((r) => r.frame_addr).filter(Boolean));
    if (cluster === undefined && this.fallback !== undefined) wanted.add(this.fallback);
    for (const address of wanted) {
      if (!this.addresses.has(address)) {
        this.socket.connect(address);
        this.addresses.add(address);
      }
    }
    for (const address of [...this.addresses]) {
      if (!wanted.has(address)) {
        this.socket.disconnect(address);
        this.addresses.delete(address);
      }
    }
    return this.addresses;
  }

  protected override failed(err: unknown): unknown {
    return new LivePortraitError("frames", `cluster frame subscription on ${this.commandAddress} failed`,
      { cause: err });
  }

  protected override released(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.health.close();
  }
}
