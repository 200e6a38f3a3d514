/** The client against a real engine and bridge (offline renderer), started once for this file. */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  BridgeError,
  EngineClient,
  EngineError,
  LivePortraitError,
  LivePortraitRenderer,
  type Frame,
} from "../src/index.js";
import { DATA, freePort, Services } from "./support/services.js";

const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff]);
const isJpeg = (bytes: Buffer): boolean => bytes.length > 100 && bytes.subarray(0, 3).equals(JPEG_MAGIC);

const services = new Services();
let client: EngineClient;
let avatar: string;
const portrait = readFileSync(join(DATA, "s42.jpg"));

before(async () => {
  await services.start();
  client = new EngineClient({
    commandAddress: services.commandAddress,
    frameAddress: services.frameAddress,
    timeoutMs: 30_000,
  });
}, { timeout: 240_000 });

after(async () => {
  client?.close();
  await services.stop();
});

describe("engine over ZeroMQ", () => {
  test("health says ok, which renderer draws, and the engine clock", async () => {
    const health = await client.health();
    assert.equal(health.ok, true);
    assert.equal(health.status, "ok");
    assert.equal(health.version, 1);
    assert.equal(health.renderer, "offline");
    assert.equal(typeof health.now, "number");
    assert.equal(typeof health.default_avatar, "string");
  });

  test("expressions lists the presets and the controls", async () => {
    const reply = await client.expressions();
    assert.deepEqual(reply.expressions, ["neutral", "happy", "sad", "surprised"]);
    assert.deepEqual(reply.intensities, { min: 0, max: 1 });
    assert.ok(reply.controls.some((c) => c.name === "jawOpen"));
  });

  test("set_source makes s42.jpg an avatar; the same bytes again are cached", async () => {
    const first = await client.setSource(portrait);
    assert.match(first.avatar, /^[0-9a-f]{16}$/);
    assert.ok(first.faces >= 1);
    assert.ok(first.width > 0 && first.height > 0);
    avatar = first.avatar;
    const again = await client.setSource(portrait);
    assert.equal(again.avatar, avatar);
    assert.equal(again.cached, true);
    const listed = await client.listAvatars();
    assert.ok(listed.avatars.includes(avatar));
  });

  test("set_expression, set_controls, keyframes, clear and set_idle answer with the engine time", async () => {
    const expr = await client.setExpression(avatar, "happy", { intensity: 0.8, transition_ms: 100 });
    assert.equal(expr.avatar, avatar);
    assert.equal(typeof expr.now, "number");
    const controls = await client.setControls(avatar, { jawOpen: 0.4, headYaw: -5 }, { transition_ms: 80 });
    assert.ok(controls.now >= expr.now);
    const clock = await client.clockOffset({ samples: 3 });
    const t0 = clock.engineNow() + 0.2;
    const scheduled = await client.scheduleControls(avatar, [
      { t: t0, controls: { jawOpen: 0.6 } },
      { t: t0 + 0.08, controls: { jawOpen: 0.1 } },
    ]);
    assert.equal(scheduled.avatar, avatar);
    assert.equal((await client.clear(avatar)).avatar, avatar);
    assert.equal((await client.setIdle(avatar, false, { seed: 7 })).avatar, avatar);
  });

  test("render returns a JPEG in the reply and a header with the state drawn", async () => {
    const reply = await client.render({ avatar, expression: "surprised", intensity: 0.6, output: "crop" });
    assert.ok(Buffer.isBuffer(reply.jpeg));
    assert.ok(isJpeg(reply.jpeg));
    assert.equal(reply.avatar, avatar);
    assert.equal(reply.header.expression, "surprised");
    assert.equal(reply.header.width, 512);
    assert.equal(reply.renderer, "offline");
    const fromImage = await client.render({ image: portrait, expression: "happy" });
    assert.equal(fromImage.avatar, avatar);
    assert.ok(isJpeg(fromImage.jpeg));
  });

  test("stream publishes frames that the async iterator yields in order", async () => {
    const frames = client.subscribe({ avatar, receiveTimeoutMs: 20_000 });
    const got: Frame[] = [];
    try {
      // subscribed before the stream starts, so only the first frames can be lost to the join
      const reply = await client.stream(avatar, 25);
      assert.equal(reply.topic, `frame.${avatar}`);
      assert.equal(reply.fps, 25);
      for await (const frame of frames) {
        got.push(frame);
        if (got.length === 5) break;
      }
    } finally {
      frames.close();
      await client.stopStream(avatar);
    }
    assert.equal(got.length, 5);
    for (const frame of got) {
      assert.equal(frame.topic, `frame.${avatar}`);
      assert.equal(frame.avatar, avatar);
      assert.equal(frame.header.avatar, avatar);
      assert.ok(isJpeg(frame.jpeg));
      assert.equal(typeof frame.header.ts, "number");
    }
    for (let i = 1; i < got.length; i++) {
      assert.ok(got[i].header.seq > got[i - 1].header.seq, "seq grows");
      assert.ok(got[i].header.ts > got[i - 1].header.ts, "ts grows");
    }
  });

  test("the clock offset maps the client clock onto health's now", async () => {
    const clock = await client.clockOffset({ samples: 5 });
    assert.ok(clock.rtt >= 0);
    const before = clock.engineNow();
    const health = await client.health();
    const afterward = clock.engineNow();
    // the engine read its clock between the two client readings (a little slack for float rounding and clock rates)
    assert.ok(health.now >= before - clock.rtt - 0.05, `${health.now} vs ${before}`);
    assert.ok(health.now <= afterward + clock.rtt + 0.05, `${health.now} vs ${afterward}`);
    assert.ok(Math.abs(clock.toClient(clock.toEngine(12.5)) - 12.5) < 1e-9);
  });

  test("a bad request is a typed EngineError with the wire code", async () => {
    await assert.rejects(client.setExpression(avatar, "angry" as never), (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.ok(err instanceof LivePortraitError);
      assert.equal(err.code, "bad_request");
      assert.equal(err.command, "set_expression");
      assert.equal(err.renderer, "offline");
      assert.ok(err.message.length > 0);
      return true;
    });
    await assert.rejects(client.setExpression(avatar, "happy", { intensity: 1.5 }), { code: "bad_request" });
    await assert.rejects(client.call("no_such_command"), { name: "EngineError", code: "unknown_command" });
    await assert.rejects(client.setExpression("0000000000000000", "happy"), { code: "unknown_avatar" });
    await assert.rejects(client.setSource(Buffer.from("not an image")), { code: "invalid_image" });
  });

  test("call() sends newer commands; speak is typed (answered, or unknown_command on an older engine)", async () => {
    const generic = await client.call("list_avatars");
    assert.ok(Array.isArray(generic.avatars));
    const dir = mkdtempSync(join(tmpdir(), "lp-speak-"));
    const wav = join(dir, "hello.wav");
    execFileSync("espeak-ng", ["-w", wav, "hello there"]);
    const audio = readFileSync(wav);
    try {
      const spoken = await client.speak(avatar, audio, { format: "wav" });
      assert.equal(spoken.avatar, avatar);
      assert.ok(spoken.end > spoken.start);
      assert.ok(spoken.duration > 0);
    } catch (err) {
      assert.ok(err instanceof EngineError, String(err));
      assert.equal(err.code, "unknown_command");
    }
  });

  test("setTurn, userAudio, userSpeech and clear answer with the turn; setSpeechMotion is typed", async () => {
    assert.equal((await client.setTurn(avatar, "thinking", { transition_ms: 100 })).turn, "thinking");
    const tone = Buffer.alloc(3200);  // 100 ms of a 150 Hz voice at 16 kHz, int16 LE
    for (let i = 0; i < 1600; i++) tone.writeInt16LE(Math.round(6000 * Math.sin(2 * Math.PI * 150 * i / 16000)), 2 * i);
    const heard = await client.userAudio(avatar, tone, 16000);
    assert.equal(heard.turn, "listening");
    assert.equal(typeof heard.now, "number");
    assert.equal((await client.userSpeech(avatar, false)).turn, "listening");
    assert.equal((await client.setTurn(avatar, "idle")).turn, "idle");
    assert.equal((await client.userSpeech(avatar, true, { interrupt: true })).turn, "listening");
    assert.equal((await client.clear(avatar)).turn, "listening");
    assert.equal((await client.listAvatars()).turns?.[avatar], "listening");
    await assert.rejects(client.userAudio(avatar, Buffer.alloc(3), 16000), { code: "bad_request" });
    await assert.rejects(client.call("set_turn", { avatar, state: "dreaming" as "idle" }), { code: "bad_request" });
    try {  // engines with speech motion (issue 22, branch conv) answer; older ones do not know the command
      assert.equal((await client.setSpeechMotion(avatar, 0.5)).avatar, avatar);
    } catch (err) {
      assert.ok(err instanceof EngineError, String(err));
      assert.equal(err.code, "unknown_command");
    }
    await client.setTurn(avatar, "idle");
  });

  test("concurrent calls each get their own socket and reply", async () => {
    const replies = await Promise.all([
      client.health(), client.listAvatars(), client.render({ avatar, expression: "sad" }), client.health(),
    ]);
    assert.equal(replies[0].status, "ok");
    assert.ok(replies[1].avatars.includes(avatar));
    assert.ok(isJpeg(replies[2].jpeg));
  });

  test("drop_source forgets the avatar", async () => {
    const image = readFileSync(join(DATA, "s1.jpg"));
    const other = (await client.setSource(image)).avatar;
    assert.equal((await client.dropSource(other)).avatar, other);
    await assert.rejects(client.clear(other), { code: "unknown_avatar" });
  });
});

describe("LivePortraitRenderer over HTTP", () => {
  test("render({sourceImage, expression, intensity}) returns JPEG bytes", async () => {
    const renderer = new LivePortraitRenderer({ baseUrl: services.bridgeUrl });
    const jpeg = await renderer.render({ sourceImage: portrait, expression: "happy", intensity: 0.8 });
    assert.ok(Buffer.isBuffer(jpeg));
    assert.ok(isJpeg(jpeg));
    const info = await renderer.renderWithInfo({ sourceImage: new Uint8Array(portrait), expression: "happy",
      intensity: 0.8 });
    assert.equal(info.renderer, "offline");
    assert.equal(info.cache, "hit");
    assert.equal(info.avatar, avatar);
    const png = readFileSync(join(DATA, "Tom_Hanks_54745.png"));
    const fromPng = await renderer.render({ sourceImage: png.buffer.slice(png.byteOffset, png.byteOffset + png.length),
      expression: "surprised", intensity: 0.5 });
    assert.ok(isJpeg(fromPng));
    assert.ok(isJpeg(await renderer.render({ sourceImage: new Blob([portrait]), expression: "neutral" })));
    assert.ok(await renderer.healthy());
    assert.deepEqual((await renderer.expressions()).expressions, ["neutral", "happy", "sad", "surprised"]);
  });

  test("the bridge's JSON errors become BridgeError with status and code", async () => {
    const renderer = new LivePortraitRenderer(services.bridgeUrl);
    await assert.rejects(renderer.render({ sourceImage: portrait, expression: "angry" as never }), (err: unknown) => {
      assert.ok(err instanceof BridgeError);
      assert.equal(err.status, 400);
      assert.equal(err.code, "bad_request");
      return true;
    });
    await assert.rejects(renderer.render({ sourceImage: portrait, expression: "happy", intensity: 2 }),
      { status: 400, code: "bad_request" });
    await assert.rejects(renderer.render({ sourceImage: Buffer.from("plain text"), expression: "happy" }),
      { name: "BridgeError", status: 415 });
  });

  test("a bridge whose engine is down answers 503 engine_unavailable with Retry-After; healthy() is false", async () => {
    const deadEngine = `tcp://127.0.0.1:${await freePort()}`;
    const url = await services.startBridge(deadEngine,
      ["--timeout-ms", "300", "--retries", "0", "--health-timeout-ms", "300"], "bridge-dead-engine");
    const renderer = new LivePortraitRenderer({ baseUrl: url });
    await assert.rejects(renderer.render({ sourceImage: portrait, expression: "happy" }), (err: unknown) => {
      assert.ok(err instanceof BridgeError);
      assert.equal(err.status, 503);
      assert.equal(err.code, "engine_unavailable");
      assert.ok(err.retryAfter !== undefined && err.retryAfter > 0);
      return true;
    });
    assert.equal(await renderer.healthy(), false);
  });

  test("a bridge that is not there is a typed error, not a hang", async () => {
    const renderer = new LivePortraitRenderer({ baseUrl: `http://127.0.0.1:${await freePort()}`, timeoutMs: 2000 });
    await assert.rejects(renderer.render({ sourceImage: portrait, expression: "happy" }),
      (err: unknown) => err instanceof LivePortraitError && ["unreachable", "timeout"].includes(err.code));
    assert.equal(await renderer.healthy(), false);
  });
});
