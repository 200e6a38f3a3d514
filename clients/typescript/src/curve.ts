/**
 * CURVE for the client's sockets, configured as the Python client configures it (engine/security.py
 * `CurveClientKeys.from_env`): the engine's public key and the client's own keypair, each as a z85 key or as a
 * zmq.auth certificate file.
 *
 * | what                 | z85 key (env)                | certificate file (env)                              |
 * |----------------------|------------------------------|-----------------------------------------------------|
 * | engine's public key  | LP_CURVE_SERVER_KEY          | LP_CURVE_SERVER_KEY_FILE (DIR/server.key)           |
 * | client's keypair     | LP_CURVE_CLIENT_SECRET_KEY   | LP_CURVE_CLIENT_SECRET_FILE (clients/NAME.key_secret) |
 *
 * A key wins over a file; neither: CURVE off; one half without the other: ConfigError (never a silent plain-text
 * connection). A z85 secret alone is enough for the keypair: its public half is derived with X25519 (node:crypto),
 * which is what libzmq's zmq_curve_public does.
 */

import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";

import { ConfigError } from "./errors.js";

export const SERVER_PUBLIC_ENV = "LP_CURVE_SERVER_KEY";
export const SERVER_PUBLIC_FILE_ENV = "LP_CURVE_SERVER_KEY_FILE";
export const CLIENT_SECRET_ENV = "LP_CURVE_CLIENT_SECRET_KEY";
export const CLIENT_SECRET_FILE_ENV = "LP_CURVE_CLIENT_SECRET_FILE";

/** What a client socket needs: the engine's public key and the client's keypair, z85 (40 characters each). */
export interface CurveClientKeys {
  serverPublic: string;
  publicKey: string;
  secretKey: string;
}

export interface CurveSources {
  serverKey?: string;
  serverKeyFile?: string;
  clientSecretKey?: string;
  clientSecretFile?: string;
}

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** Z85 (ZeroMQ RFC 32) to bytes; ConfigError for a string that is not Z85 of the right length. */
export function z85Decode(text: string, what = "key"): Buffer {
  if (text.length % 5 !== 0) throw new ConfigError(`${what} is not Z85 (length ${text.length} is not a multiple of 5)`);
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (let j = 0; j < 5; j++) {
      const digit = Z85.indexOf(text[i + j]!);
      if (digit < 0) throw new ConfigError(`${what} is not Z85 (character ${JSON.stringify(text[i + j])})`);
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) throw new ConfigError(`${what} is not Z85 (a group overflows 32 bits)`);
    out.writeUInt32BE(value, (i / 5) * 4);
  }
  return out;
}

/** Bytes (a multiple of 4) to Z85. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError("Z85 encodes a multiple of 4 bytes");
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let out = "";
  for (let i = 0; i < view.length; i += 4) {
    let value = view.readUInt32BE(i);
    let chunk = "";
    for (let j = 0; j < 5; j++) {
      chunk = Z85[value % 85] + chunk;
      value = Math.floor(value / 85);
    }
    out += chunk;
  }
  return out;
}

function checkKey(key: string, what: string): string {
  const trimmed = key.trim();
  if (trimmed.length !== 40 || z85Decode(trimmed, what).length !== 32) {
    throw new ConfigError(`${what} is not a z85 CURVE key (40 characters)`);
  }
  return trimmed;
}

/** The public half of a z85 CURVE secret key (X25519 of the base point, as zmq_curve_public computes it). */
export function curvePublicKey(secretKey: string): string {
  const secret = z85Decode(checkKey(secretKey, "CURVE secret key"), "CURVE secret key");
  // PKCS#8 wrapping of a raw X25519 private key (RFC 8410): a fixed 16-byte prefix, then the 32 key bytes.
  const der = Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), secret]);
  const jwk = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({ format: "jwk" });
  return z85Encode(Buffer.from(String(jwk.x), "base64url"));
}

/** A zmq.auth certificate file (ZPL): its z85 public key and, in a `.key_secret` file, its secret key. */
export function readCertificate(path: string): { publicKey: string; secretKey?: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read the CURVE key file ${path}: ${(err as Error).message}`);
  }
  const field = (name: string): string | undefined =>
    new RegExp(`^\\s*${name}\\s*=\\s*"([^"]*)"`, "m").exec(text)?.[1];
  const publicKey = field("public-key");
  if (publicKey === undefined) throw new ConfigError(`cannot read the CURVE key file ${path}: no public-key`);
  const secretKey = field("secret-key");
  return { publicKey: checkKey(publicKey, `public-key in ${path}`),
    ...(secretKey === undefined ? {} : { secretKey: checkKey(secretKey, `secret-key in ${path}`) }) };
}

/** A client's CURVE keys from z85 keys or certificate files (a key wins); undefined when nothing is given. */
export function curveClientKeys(sources: CurveSources): CurveClientKeys | undefined {
  let serverPublic: string | undefined;
  if (sources.serverKey) serverPublic = checkKey(sources.serverKey, SERVER_PUBLIC_ENV);
  else if (sources.serverKeyFile) serverPublic = readCertificate(sources.serverKeyFile).publicKey;

  let pair: { publicKey: string; secretKey: string } | undefined;
  if (sources.clientSecretKey) {
    const secretKey = checkKey(sources.clientSecretKey, CLIENT_SECRET_ENV);
    pair = { publicKey: curvePublicKey(secretKey), secretKey };
  } else if (sources.clientSecretFile) {
    const cert = readCertificate(sources.clientSecretFile);
    if (cert.secretKey === undefined) {
      throw new ConfigError(`${sources.clientSecretFile} holds no secret key (use the .key_secret file)`);
    }
    pair = { publicKey: cert.publicKey, secretKey: cert.secretKey };
  }
  if (serverPublic === undefined && pair === undefined) return undefined;
  if (serverPublic === undefined || pair === undefined) {
    const missing = serverPublic === undefined ? "the engine's public key" : "the client's secret key";
    throw new ConfigError(`CURVE half configured: ${missing} is missing (${SERVER_PUBLIC_ENV} / ` +
      `${SERVER_PUBLIC_FILE_ENV} and ${CLIENT_SECRET_ENV} / ${CLIENT_SECRET_FILE_ENV})`);
  }
  return { serverPublic, ...pair };
}

/** From the LP_CURVE_* variables in the table above (default: process.env); undefined when none is set. */
export function curveKeysFromEnv(env: Record<string, string | undefined> = process.env): CurveClientKeys | undefined {
  return curveClientKeys({
    serverKey: env[SERVER_PUBLIC_ENV],
    serverKeyFile: env[SERVER_PUBLIC_FILE_ENV],
    clientSecretKey: env[CLIENT_SECRET_ENV],
    clientSecretFile: env[CLIENT_SECRET_FILE_ENV],
  });
}

/** The socket options that make a zeromq.js socket a CURVE client (spread into its constructor options). */
export function curveSocketOptions(keys: CurveClientKeys | undefined):
  { curveServerKey?: string; curvePublicKey?: string; curveSecretKey?: string } {
  return keys === undefined ? {} : {
    curveServerKey: keys.serverPublic,
    curvePublicKey: keys.publicKey,
    curveSecretKey: keys.secretKey,
  };
}
