/** ClusterFrameSubscription on real sockets, no Ray: a REP peer plays the cluster's health (its replica list can
 * change) and two PUB sockets play two replicas. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { decode, encode } from "@msgpack/msgpack";
import * as zmq from "zeromq";

import { ClusterFrameSubscription } from "../src/index.js";
import { freePort } from "./support/services.js";

async function publisher(): Promise<{ socket: zmq.Publisher; address: string }> {
  const address = `tcp://127.0.0.1:${await freePort()}`;
  const socket = new zmq.Publisher({ linger: 0 });
  await socket.bind(address);
  return { socket, address };
}

test("one subscription follows the cluster's replica list", async () => {
  const [a, b] = [await publisher(), await publisher()];
  let replicas = [a.address, b.address];
  const commandAddress = `tcp://127.0.0.1:${await freePort()}`;
  const rep = new zmq.Reply({ linger: 0 });
  await rep.bind(commandAddress);
  let serving = true;
  const serve = (async () => {
    while (serving) {
      let request: Buffer[];
      try {
        request = await rep.receive();
      } catch {
        return;
      }
      assert.equal((decode(request[0]) as { cmd: string }).cmd, "health");
      const list = replicas.map((frame_addr, i) => ({ id: `r${i}`, frame_addr, avatars: [] }));
      await rep.send(encode({ ok: true, renderer: "offline", status: "ok", now: 1, cluster: { replicas: list } }));
    }
  })();
  const sub = await ClusterFrameSubscription.open(commandAddress, { refreshMs: 100 });
  try {
    assert.deepEqual([...sub.addresses].sort(), [a.address, b.address].sort());
    const seen = new Map<string, number>();
    const deadline = Date.now() + 10_000;
    const send = setInterval(() => {
      for (const [name, pub] of [["a", a], ["b", b]] as const) {
        void pub.socket.send([`frame.${name}`, encode({ seq: 0, ts: 0, avatar: name, epoch: 1 }),
          Buffer.from([0xff, 0xd8])]);
      }
    }, 50);
    try {
      for await (const frame of sub) {
        seen.set(frame.avatar, frame.header.epoch as number);
        if (seen.size === 2 || Date.now() > deadline) break;
      }
    } finally {
      clearInterval(send);
    }
    assert.deepEqual(Object.fromEntries(seen), { a: 1, b: 1 });
  } finally {
    sub.close();
  }
  const follower = await ClusterFrameSubscription.open(commandAddress, { refreshMs: 100 });
  try {
    replicas = [b.address];  // replica a is gone
    const until = Date.now() + 5000;
    while (follower.addresses.has(a.address) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual([...follower.addresses], [b.address]);
  } finally {
    follower.close();
    serving = false;
    rep.close();
    a.socket.close();
    b.socket.close();
    await serve;
  }
});
