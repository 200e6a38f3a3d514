/** What needs no engine: timeouts on a dead address, and the frame and reply codecs. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { encode } from "@msgpack/msgpack";

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
