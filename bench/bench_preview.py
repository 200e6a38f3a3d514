"""Glass-to-glass delay of the /preview page at 25 fps (engine frame ts -> browser paint), and the transport choice.

Starts a real engine and bridge on loopback and headless Debian Chromium (/usr/bin/chromium, Playwright). Each run:
  header: the page as shipped (WebSocket + canvas, idle life on): every frame's `ts` -> the animation frame after it
          was drawn, both on this machine's clocks (engine time mapped onto Unix time with the health `now` offset).
          This is the page's own "delay" figure: absolute, +- one display frame.
  race:   the same avatar also shown by MJPEG in an <img> next to the canvas. With idle off the frames are constant;
          the head is turned every 0.4 s (transition 0). A subscriber on the engine's PUB socket finds the first frame
          of each turn (its ts); Chromium's screencast (DevTools Page.startScreencast, the composited page) finds the
          first composited frame where each picture changed. Screencast time includes its own capture delay (tens of
          ms on a loaded CPU), the same for both pictures in one composited frame, so `mjpeg - ws` is exact while the
          absolute marker figures are upper bounds.
Prints p50/p95 per run and the median/min/max over runs.
  python bench/bench_preview.py [--runs 3] [--markers 20] [--fps 25] [--screenshot docs/preview.png]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import simplejpeg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _services import services  # noqa: E402  (bench/ is on sys.path when run)

from engine.client import EngineClient, FrameSubscriber  # noqa: E402
from engine.stats import percentile  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


class Engine:
    """Commands through engine/client/ (the one client of the protocol), keyword style: ``engine(cmd=..., ...)``."""

    def __init__(self, addr: str) -> None:
        self.client = EngineClient(addr)

    def __call__(self, cmd: str, **fields: object) -> dict:
        return self.client.call(cmd, **fields)

    def offset(self) -> float:
        """Unix time minus engine time: the client's offset (engine = monotonic + offset) moved onto the wall clock."""
        measured = self.client.clock_offset(5)
        return time.time() - time.monotonic() - measured.offset


class Recorder(threading.Thread):
    """Every frame of one avatar: (ts, digest of the JPEG)."""

    def __init__(self, addr: str, avatar: str) -> None:
        super().__init__(daemon=True)
        self.sub = FrameSubscriber(addr, avatar, hwm=1000)  # a recorder wants every frame, not the newest
        self.frames: list[tuple[float, bytes]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            frame = self.sub.recv(100)
            if frame is not None:
                self.frames.append((frame.ts, hashlib.sha1(frame.jpeg).digest()))
        self.sub.close()


class Screencast:
    """Composited frames of the page (DevTools screencast): when each watched element's picture changed on screen."""

    def __init__(self, page, selectors: dict[str, str]) -> None:
        self.boxes = {}
        for name, selector in selectors.items():
            box = page.locator(selector).bounding_box()
            self.boxes[name] = (box["x"], box["y"], box["width"], box["height"])
        self.cdp = page.context.new_cdp_session(page)
        self.previous: dict[str, np.ndarray] = {}
        self.changes: dict[str, list[float]] = {name: [] for name in selectors}
        self.cdp.on("Page.screencastFrame", self.frame)
        self.cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 90, "maxWidth": 600, "maxHeight": 350,
                                               "everyNthFrame": 1})

    def frame(self, event: dict) -> None:
        try:
            self.cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]})
        except Exception:  # the page closed while a frame was on its way
            return
        meta = event["metadata"]
        image = simplejpeg.decode_jpeg(base64.b64decode(event["data"]), colorspace="GRAY")
        scale = image.shape[1] / meta["deviceWidth"]
        top = meta.get("offsetTop", 0) * scale
        for name, box in self.boxes.items():
            x, y, w, h = (v * scale for v in box)
            crop = image[int(top + y + 0.1 * h):int(top + y + 0.9 * h), int(x + 0.1 * w):int(x + 0.9 * w)]
            crop = crop.astype(np.int16)
            previous = self.previous.get(name)
            if previous is not None and previous.shape == crop.shape and np.abs(crop - previous).mean() > 0.05:
                self.changes[name].append(float(meta["timestamp"]))
            self.previous[name] = crop

    def close(self) -> None:
        self.cdp.send("Page.stopScreencast")
        self.cdp.detach()


def race(page, engine: Engine, frame_addr: str, avatar: str, markers: int, yaw: float) -> dict[str, list[float]]:
    """Head turns shown by both transports at once: marker delays per transport and their difference per turn."""
    engine(cmd="set_idle", avatar=avatar, enabled=False)
    engine(cmd="set_controls", avatar=avatar, controls={"headYaw": 0.0}, transition_ms=0)
    page.wait_for_timeout(1000)  # idle life and the expression settle: constant frames from here
    recorder = Recorder(frame_addr, avatar)
    recorder.start()
    screencast = Screencast(page, {"ws": "#canvas", "mjpeg": "#mjpeg-race"})
    page.wait_for_timeout(500)
    offset = engine.offset()
    for k in range(markers):
        engine(cmd="set_controls", avatar=avatar, controls={"headYaw": yaw if k % 2 == 0 else -yaw}, transition_ms=0)
        page.wait_for_timeout(400)  # Playwright delivers the screencast's events while it waits
    recorder.stop.set()
    recorder.join()
    screencast.close()
    out: dict[str, list[float]] = {"ws": [], "mjpeg": [], "mjpeg - ws": []}
    previous, last_change = None, -1.0
    for ts, digest in recorder.frames:
        if previous is not None and digest != previous:
            if ts - last_change > 0.2:  # the first frame of a turn (a turn spreads over a few frames)
                wall = ts + offset
                seen = {name: [t for t in changes if wall - 0.005 <= t < wall + 0.35]
                        for name, changes in screencast.changes.items()}
                for name in ("ws", "mjpeg"):
                    if seen[name]:
                        out[name].append((seen[name][0] - wall) * 1000.0)
                if seen["ws"] and seen["mjpeg"]:
                    out["mjpeg - ws"].append((seen["mjpeg"][0] - seen["ws"][0]) * 1000.0)
            last_change = ts
        previous = digest
    engine(cmd="set_controls", avatar=avatar, controls={"headYaw": 0.0}, transition_ms=0)
    engine(cmd="set_idle", avatar=avatar, enabled=True)
    return out


def summary(name: str, runs: list[tuple[float, float, int]]) -> None:
    p50s, p95s = [r[0] for r in runs], [r[1] for r in runs]
    print(f"{name}: p50 median {statistics.median(p50s):.1f} ms (min {min(p50s):.1f}, max {max(p50s):.1f}); "
          f"p95 median {statistics.median(p95s):.1f} ms (min {min(p95s):.1f}, max {max(p95s):.1f}); "
          f"{len(runs)} runs, {sum(r[2] for r in runs)} samples")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markers", type=int, default=20)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--header-seconds", type=float, default=6.0)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the page here (PNG)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with services() as svc:
        cmd, frames, url = svc.command_addr, svc.frame_addr, svc.url
        engine = Engine(cmd)
        controls = {c["name"]: c for c in engine(cmd="expressions")["controls"]}
        yaw = 0.6 * float(controls["headYaw"]["max"])
        results: dict[str, list[tuple[float, float, int]]] = {"header": [], "ws": [], "mjpeg": [], "mjpeg - ws": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for run in range(args.runs):
                page = browser.new_page(viewport={"width": 1200, "height": 700})
                page.goto(f"{url}/preview?transport=ws")
                page.wait_for_function("window.preview && window.preview.ready", timeout=60_000)
                page.fill("#fps", str(int(args.fps)))
                page.dispatch_event("#fps", "change")
                avatar = page.evaluate("window.preview.avatar")
                page.wait_for_timeout(1500)
                if args.screenshot and run == 0:
                    page.set_viewport_size({"width": 1200, "height": 900})
                    page.click("#expressions button[data-expression=happy]")
                    page.locator("#control-headYaw").fill(str(0.3 * yaw))
                    page.wait_for_timeout(1500)
                    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.screenshot), full_page=True)
                    page.click("#expressions button[data-expression=neutral]")
                    page.click("#clear")
                    page.set_viewport_size({"width": 1200, "height": 700})
                page.evaluate("window.preview.delays = []")
                page.wait_for_timeout(args.header_seconds * 1000)
                delays = page.evaluate("window.preview.delays")
                results["header"].append((percentile(delays, 50), percentile(delays, 95), len(delays)))
                print(f"run {run} header (ws): p50 {percentile(delays, 50):.1f} ms p95 {percentile(delays, 95):.1f} ms "
                      f"({len(delays)} frames)", flush=True)
                page.evaluate(f"""() => {{ const img = document.createElement('img'); img.id = 'mjpeg-race';
                    img.style.cssText = 'position:fixed;left:600px;top:60px;width:512px;height:512px;'
                        + 'object-fit:contain;background:#000;z-index:9';
                    img.src = '/preview/stream.mjpeg?avatar={avatar}'; document.body.appendChild(img); }}""")
                page.wait_for_function("document.getElementById('mjpeg-race').naturalWidth > 0", timeout=10_000)
                page.wait_for_timeout(500)
                for name, values in race(page, engine, frames, avatar, args.markers, yaw).items():
                    if values:
                        results[name].append((percentile(values, 50), percentile(values, 95), len(values)))
                        print(f"run {run} race {name}: p50 {percentile(values, 50):.1f} ms "
                              f"p95 {percentile(values, 95):.1f} ms "
                              f"({len(values)} of {args.markers} turns)", flush=True)
                page.close()
            browser.close()
        print(f"glass-to-glass at {args.fps:g} fps (engine frame ts -> browser paint), {os.cpu_count()} CPUs:")
        for key, name in (("header", "page as shipped, WebSocket + canvas: frame ts -> its animation frame"),
                          ("ws", "race, WebSocket + canvas: frame ts -> screencast (upper bound)"),
                          ("mjpeg", "race, MJPEG <img>: frame ts -> screencast (upper bound)"),
                          ("mjpeg - ws", "race, MJPEG minus WebSocket, same composited frames (exact)")):
            if results[key]:
                summary(name, results[key])


if __name__ == "__main__":
    main()
