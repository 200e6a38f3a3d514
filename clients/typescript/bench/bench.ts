/**
 * Figures for the TypeScript client against a real engine (offline renderer here): command round trips, a cached
 * render, and frames received from a 25 fps stream. Starts its own engine unless LP_COMMAND_ADDR and LP_FRAME_ADDR
 * name a running one. Prints median, min and max; never asserts.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";

import { EngineClient, LivePortraitRenderer, monotonicSeconds } from "../src/index.js";
import { DATA, Services } from "../test/support/services.js";

function summary(name: string, ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return `${name.padEnd(34)} median ${median.toFixed(2)} ms  min ${sorted[0].toFixed(2)}  max ${sorted.at(-1)!.toFixed(2)}` +
    `  (n=${ms.length})`;
}

async function timed(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

async function main(): Promise<void> {
  const own = process.env.LP_COMMAND_ADDR === undefined ? new Services() : undefined;
  await own?.start();
  const client = new EngineClient({
    commandAddress: own?.commandAddress ?? process.env.LP_COMMAND_ADDR,
    frameAddress: own?.frameAddress ?? process.env.LP_FRAME_ADDR,
  });
  try {
    const portrait = readFileSync(join(DATA, "s42.jpg"));
    const { avatar } = await client.setSource(portrait);
    await client.health();
    console.log(summary("health round trip", await timed(200, () => client.health())));
    console.log(summary("set_expression round trip", await timed(200, () => client.setExpression(avatar, "happy"))));
    await client.render({ avatar, expression: "happy", output: "crop" });
    console.log(summary("render crop, cached", await timed(50,
      () => client.render({ avatar, expression: "happy", output: "crop" }))));
    let i = 0;
    console.log(summary("render full frame, cache miss", await timed(30,
      () => client.render({ avatar, expression: "happy", intensity: 0.5 + (i++) * 0.01 }))));
    const bridgeUrl = own?.bridgeUrl ?? process.env.LP_BRIDGE_URL;
    if (bridgeUrl !== undefined) {
      const http = new LivePortraitRenderer({ baseUrl: bridgeUrl });
      let j = 0;
      console.log(summary("HTTP render, cache miss", await timed(30,
        () => http.render({ sourceImage: portrait, expression: "sad", intensity: 0.5 + (j++) * 0.01 }))));
      console.log(summary("HTTP render, cache hit", await timed(50,
        () => http.render({ sourceImage: portrait, expression: "sad", intensity: 0.5 }))));
    }

    const clock = await client.clockOffset({ samples: 9 });
    const frames = client.subscribe({ avatar, receiveTimeoutMs: 10_000 });
    await client.stream(avatar, 25);
    const ages: number[] = [];
    let first: number | undefined;
    let count = 0;
    let lastSeq = -1;
    let gaps = 0;
    for await (const frame of frames) {
      // frame ts is the tick's engine time: age = when the iterator yielded it minus when it was due
      ages.push((clock.engineNow() - frame.header.ts) * 1000);
      if (lastSeq >= 0 && frame.header.seq !== lastSeq + 1) gaps += 1;
      lastSeq = frame.header.seq;
      first ??= monotonicSeconds();
      if (++count === 101) break;
    }
    const seconds = monotonicSeconds() - first!;
    await client.stopStream(avatar);
    console.log(summary("frame age at the iterator (25 fps)", ages.slice(1)));
    console.log(`${"frames received at 25 fps".padEnd(34)} ${((count - 1) / seconds).toFixed(1)} fps, seq gaps ${gaps}` +
      `, clock rtt ${(clock.rtt * 1000).toFixed(2)} ms`);
  } finally {
    client.close();
    await own?.stop();
  }
}

await main();
