/** msgpack in and out, as the engine speaks it: one map per message, bytes as `bin`, absent fields left out. */

import { decode, encode } from "@msgpack/msgpack";

import { ProtocolError } from "./errors.js";

export function pack(message: Record<string, unknown>): Buffer {
  const bytes = encode(message, { ignoreUndefined: true });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decode one map; bin fields at the top level and one level down become Buffers (what Node callers write to disk). */
export function unpackMap(raw: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = decode(raw);
  } catch (cause) {
    throw new ProtocolError(`${what} is not msgpack`, { cause });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
    throw new ProtocolError(`${what} is not a msgpack map`);
  }
  return buffersIn(value as Record<string, unknown>, 2) as Record<string, unknown>;
}

function buffersIn(value: unknown, depth: number): unknown {
  if (value instanceof Uint8Array) return toBuffer(value);
  if (depth > 0 && value !== null && typeof value === "object" && !Array.isArray(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = buffersIn(v, depth - 1);
    return out;
  }
  return value;
}

export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
