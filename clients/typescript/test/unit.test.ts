/** What needs no engine: timeouts on a dead address, and the frame and reply codecs. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { decode, encode } from "@msgpack/msgpack";
import * as zmq from "zeromq";

import {
  ClockOffset,
  ClosedError,
  EngineClient,
  EngineTimeoutError,
  ProtocolError,
  pack,
  parseFrame,
  unpackMap,
} from "../src/index.js";
import { freePort } from "./support/services.js";

test("a dead address times out with EngineTimeoutError after the Lazy Pirate retries", async () => {
  const address = `tcp://127.0.0.1:${await freePort()}`;
  const client = new EngineClient({ commandAddress: address, timeoutMs: 150, retries: 2 });
  try {
    await assert.rejects(client.health(), (err: unknown) => {
      assert.ok(err instanceof EngineTimeoutError);
      assert.equal(err.code, "timeout");
      assert.equal(err.attempts, 3);
      assert.equal(err.address, address);
      return true;
    });
    await assert.rejects(client.health({ timeoutMs: 50, retries: 0 }), { name: "EngineTimeoutError", attempts: 1 });
  } finally {
    client.close();
  }
  await assert.rejects(client.health(), ClosedError);
});

/**
 * A peer that speaks only the envelope (a ROUTER, as the engine's command socket is) and follows a script: it
 * stands in for an engine that loses a request or answers garbage, which the real engine cannot be made to do.
 */
async function scriptedPeer(script: (request: Record<string, unknown>, n: number) => Buffer | undefined):
  Promise<{ address: string; identities: string[]; close: () => void }> {
  const router = new zmq.Router({ linger: 0 });
  const address = `tcp://127.0.0.1:${await freePort()}`;
  await router.bind(address);
  const identities: string[] = [];
  void (async () => {
    let n = 0;
    try {
      for await (const [identity, empty, body] of router) {
        identities.push(identity.toString("hex"));
        const reply = script(decode(body) as Record<string, unknown>, n++);
        if (reply !== undefined) await router.send([identity, empty, reply]);
      }
    } catch {
      // closed
    }
  })();
  return { address, identities, close: () => router.close() };
}

test("Lazy Pirate: a lost reply is retried on a fresh socket and the retry's reply is returned", async () => {
  const peer = await scriptedPeer((request, n) => n === 0 ? undefined
    : pack({ ok: true, renderer: "offline", status: "ok", version: 1, now: 42.5, cmd: request.cmd }));
  const client = new EngineClient({ commandAddress: peer.address, timeoutMs: 300, retries: 1 });
  try {
    const health = await client.health();
    assert.equal(health.now, 42.5);
    assert.equal(health.cmd, "health");
    assert.equal(peer.identities.length, 2);
    assert.notEqual(peer.identities[0], peer.identities[1], "the retry came from a new socket");
    assert.equal((await client.health()).status, "ok", "the fresh socket is reused afterwards");
  } finally {
    client.close();
    peer.close();
  }
});

test("a reply that is not a protocol map is a ProtocolError, and the client keeps working", async () => {
  const peer = await scriptedPeer((_request, n) => n === 0 ? Buffer.from([0xc1])
    : n === 1 ? Buffer.from(encode({ renderer: "offline" })) : pack({ ok: false, renderer: "offline" }));
  const client = new EngineClient({ commandAddress: peer.address, timeoutMs: 2000 });
  try {
    await assert.rejects(client.health(), ProtocolError);
    await assert.rejects(client.health(), { name: "ProtocolError", code: "bad_reply" });
    await assert.rejects(client.health(), { name: "EngineError", code: "internal" });
  } finally {
    client.close();
    peer.close();
  }
});

test("close() rejects a call in flight with ClosedError", async () => {
  const client = new EngineClient({ commandAddress: `tcp://127.0.0.1:${await freePort()}`, timeoutMs: 60_000 });
  const pending = client.health();
  await new Promise((ok) => setTimeout(ok, 50));
  client.close();
  await assert.rejects(pending, ClosedError);
});

test("options are checked", () => {
  assert.throws(() => new EngineClient({ timeoutMs: 0 }), RangeError);
  assert.throws(() => new EngineClient({ retries: -1 }), RangeError);
});

test("requests leave absent fields out and send bytes as bin", () => {
  const raw = pack({ v: 1, cmd: "render", avatar: undefined, image: Buffer.from([1, 2, 3]) });
  const map = unpackMap(raw, "request");
  assert.deepEqual(Object.keys(map).sort(), ["cmd", "image", "v"]);
  assert.ok(Buffer.isBuffer(map.image));
  assert.deepEqual([...(map.image as Buffer)], [1, 2, 3]);
  assert.throws(() => unpackMap(encode([1, 2]), "reply"), ProtocolError);
  assert.throws(() => unpackMap(Buffer.from([0xc1]), "reply"), ProtocolError);
});

test("parseFrame takes [topic, header, jpeg] and refuses anything else", () => {
  const header = encode({ seq: 3, ts: 10.5, avatar: "abc", expression: "happy" });
  const frame = parseFrame([Buffer.from("frame.abc"), header, Buffer.from([0xff, 0xd8, 0xff])]);
  assert.ok(frame);
  assert.equal(frame.avatar, "abc");
  assert.equal(frame.header.seq, 3);
  assert.ok(Buffer.isBuffer(frame.jpeg));
  assert.equal(parseFrame([Buffer.from("frame.abc"), header]), undefined);
  assert.equal(parseFrame([Buffer.from("other.abc"), header, Buffer.alloc(1)]), undefined);
  assert.equal(parseFrame([Buffer.from("frame.abc"), Buffer.from([0xc1]), Buffer.alloc(1)]), undefined);
});

test("ClockOffset converts both ways", () => {
  const clock = new ClockOffset(100, 0.002, () => 5);
  assert.equal(clock.toEngine(1), 101);
  assert.equal(clock.toClient(101), 1);
  assert.equal(clock.engineNow(), 105);
});
