/**
 * Typed errors: one base class with the wire `code`, so a caller can switch on `err.code` whether the refusal came
 * from the engine (msgpack `{"ok": false, "error": {code, message}}`), the bridge (HTTP JSON) or the client itself.
 */

import type { ErrorCode } from "./types.js";

export class LivePortraitError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The engine refused a request: `code` is the wire code (bad_request, no_face, unknown_avatar, busy, ...). */
export class EngineError extends LivePortraitError {
  declare readonly code: ErrorCode | string;
  /** The renderer the engine named in its reply (the reply still says what draws the face). */
  readonly renderer: string | undefined;
  readonly command: string;

  constructor(command: string, code: string, message: string, renderer?: string) {
    super(code, message);
    this.command = command;
    this.renderer = renderer;
  }
}

/** No reply within the timeout after every Lazy Pirate retry: the engine is down, stuck or unreachable. */
export class EngineTimeoutError extends LivePortraitError {
  readonly address: string;
  readonly timeoutMs: number;
  readonly attempts: number;

  constructor(address: string, command: string, timeoutMs: number, attempts: number) {
    super("timeout", `no reply to ${command} from the engine at ${address} within ${timeoutMs} ms (${attempts} tries)`);
    this.address = address;
    this.timeoutMs = timeoutMs;
    this.attempts = attempts;
  }
}

/** The peer answered with something that is not protocol v1 (not msgpack, not a map, a bad frame). */
export class ProtocolError extends LivePortraitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("bad_reply", message, options);
  }
}

/** The HTTP bridge refused a request: its JSON body `{"error": {code, message}}` plus the HTTP status. */
export class BridgeError extends LivePortraitError {
  readonly status: number;
  /** Seconds from Retry-After on 503, when the bridge sent it. */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, message: string, retryAfter?: number) {
    super(code, message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** The client was closed while a request or a subscription was waiting. */
export class ClosedError extends LivePortraitError {
  constructor(what: string) {
    super("closed", `${what} is closed`);
  }
}

/** The client's own settings contradict themselves (half a CURVE configuration, an unreadable key file). */
export class ConfigError extends LivePortraitError {
  constructor(message: string) {
    super("config_error", message);
  }
}
