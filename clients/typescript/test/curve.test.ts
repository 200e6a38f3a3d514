/**
 * CURVE from Node against a real engine with CURVE on (LP_CURVE_KEYS_DIR, keys written by `python -m engine.security
 * generate`): the LP_CURVE_* variables, read as the Python client reads them, let the client in; no keys, or keys
 * the engine does not list, get nothing.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  ClusterFrameSubscription,
  ConfigError,
  curveClientKeys,
  curveKeysFromEnv,
  curvePublicKey,
  EngineClient,
  EngineTimeoutError,
  readCertificate,
  z85Decode,
  z85Encode,
} from "../src/index.js";
import { Services } from "./support/services.js";

const services = new Services();
const keys = join(services.tmp, "keys");
const fileEnv = () => ({
  LP_CURVE_SERVER_KEY_FILE: join(keys, "server.key"),
  LP_CURVE_CLIENT_SECRET_FILE: join(keys, "clients", "bridge.key_secret"),
});

before(async () => {
  services.runPython(["-m", "engine.security", "generate", keys, "bridge", "stranger"]);
  // the stranger's keypair is valid but not listed: drop its public key from the engine's list
  services.runPython(["-c", `import os; os.remove(${JSON.stringify(join(keys, "clients", "stranger.key"))})`]);
  await services.startEngine({ LP_CURVE_KEYS_DIR: keys, LP_WARMUP: "0" }, curveKeysFromEnv(fileEnv()) ?? null);
}, { timeout: 240_000 });

after(async () => {
  await services.stop();
});

describe("CURVE keys, read like engine/security.py reads them", () => {
  test("z85 round trip and the RFC 32 test vector", () => {
    const bytes = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
    assert.equal(z85Encode(bytes), "HelloWorld");
    assert.deepEqual(z85Decode("HelloWorld"), bytes);
    assert.throws(() => z85Decode("Hello~orld"), ConfigError);
  });

  test("the public key derived from a secret is the one pyzmq wrote beside it", () => {
    const cert = readCertificate(join(keys, "clients", "bridge.key_secret"));
    assert.ok(cert.secretKey);
    assert.equal(curvePublicKey(cert.secretKey), cert.publicKey);
  });

  test("nothing set: off; half set: ConfigError; a key wins over a file", () => {
    assert.equal(curveKeysFromEnv({}), undefined);
    assert.throws(() => curveKeysFromEnv({ LP_CURVE_SERVER_KEY_FILE: join(keys, "server.key") }),
      (err: unknown) => err instanceof ConfigError && err.code === "config_error" && /half configured/.test(err.message));
    assert.throws(() => curveKeysFromEnv({ ...fileEnv(), LP_CURVE_SERVER_KEY_FILE: join(keys, "missing.key") }),
      /cannot read/);
    assert.throws(() => curveClientKeys({ serverKey: "too short", clientSecretFile: fileEnv().LP_CURVE_CLIENT_SECRET_FILE }),
      ConfigError);
    const server = readCertificate(join(keys, "server.key")).publicKey;
    const other = readCertificate(join(keys, "clients", "stranger.key_secret"));
    const both = curveKeysFromEnv({ ...fileEnv(), LP_CURVE_CLIENT_SECRET_KEY: other.secretKey! });
    assert.deepEqual(both, { serverPublic: server, publicKey: other.publicKey, secretKey: other.secretKey });
    assert.ok(readFileSync(join(keys, "server.key"), "utf8").includes(server));
  });
});

describe("an engine with CURVE on", () => {
  test("certificate files from the environment: commands and frames get through", async () => {
    const vars = fileEnv();
    Object.assign(process.env, vars);
    let client: EngineClient;
    try {
      client = new EngineClient({ commandAddress: services.commandAddress, frameAddress: services.frameAddress,
        timeoutMs: 20_000, retries: 0 }); // no `curve` option: read from LP_CURVE_* as the Python client does
    } finally {
      for (const name of Object.keys(vars)) delete process.env[name];
    }
    try {
      assert.ok(client.curve, "the client read the keys from the environment");
      assert.equal((await client.health()).status, "ok");
      const render = await client.render({ avatar: "default", output: "crop" });
      assert.ok(render.jpeg.subarray(0, 2).equals(Buffer.from([0xff, 0xd8])));
      const frames = client.subscribe({ receiveTimeoutMs: 20_000 });
      await new Promise((ok) => setTimeout(ok, 300));
      const { avatar } = await client.stream("default", 20);
      try {
        const first = await frames.next();
        assert.equal(first.done, false);
        assert.equal(first.value?.avatar, avatar);
        assert.ok(first.value?.jpeg.subarray(0, 2).equals(Buffer.from([0xff, 0xd8])));
      } finally {
        frames.close();
        await client.stopStream(avatar);
      }
    } finally {
      client.close();
    }
  });

  test("a cluster subscription takes the keys from the environment too: its replica list and its frames", async () => {
    const vars = fileEnv();
    Object.assign(process.env, vars);
    let sub: ClusterFrameSubscription;
    let client: EngineClient;
    try { // a single engine: health has no `cluster`, so the subscription uses its fallback frame address
      sub = await ClusterFrameSubscription.open(services.commandAddress, { fallbackAddress: services.frameAddress,
        refreshMs: 200 });
      client = new EngineClient({ commandAddress: services.commandAddress, timeoutMs: 20_000, retries: 0 });
    } finally {
      for (const name of Object.keys(vars)) delete process.env[name];
    }
    try {
      assert.deepEqual([...sub.addresses], [services.frameAddress]);
      await new Promise((ok) => setTimeout(ok, 300));
      const { avatar } = await client.stream("default", 20);
      try {
        const timeout = new Promise<never>((_, fail) => setTimeout(() => fail(new Error("no frame in 20 s")), 20_000));
        const first = await Promise.race([sub.next(), timeout]);
        assert.equal(first.done, false);
        assert.equal(first.value?.avatar, avatar);
      } finally {
        await client.stopStream(avatar);
      }
    } finally {
      sub.close();
      client.close();
    }
  });

  test("z85 keys from the environment (the secret alone: its public half derived)", async () => {
    const secret = readCertificate(join(keys, "clients", "bridge.key_secret")).secretKey!;
    const curve = curveKeysFromEnv({ LP_CURVE_SERVER_KEY: readCertificate(join(keys, "server.key")).publicKey,
      LP_CURVE_CLIENT_SECRET_KEY: secret });
    const client = new EngineClient({ commandAddress: services.commandAddress, timeoutMs: 20_000, retries: 0, curve });
    try {
      assert.equal((await client.health()).status, "ok");
    } finally {
      client.close();
    }
  });

  test("no keys, or keys the engine does not list: no answer", async () => {
    const stranger = curveKeysFromEnv({ LP_CURVE_SERVER_KEY_FILE: join(keys, "server.key"),
      LP_CURVE_CLIENT_SECRET_FILE: join(keys, "clients", "stranger.key_secret") });
    for (const curve of [null, stranger]) {
      const client = new EngineClient({ commandAddress: services.commandAddress, timeoutMs: 1500, retries: 0, curve });
      try {
        await assert.rejects(client.health(), EngineTimeoutError);
      } finally {
        client.close();
      }
    }
  });
});
