"""WebRTC (WHEP) figures: the codec choice, glass-to-glass delay, A/V offset, bridge CPU per viewer, how many viewers
of one avatar this machine serves at 25 fps, and the bridge's RSS over 100 connects and disconnects.

Starts a real engine (offline renderer unless LP_MODELS_DIR is set) and bridge on loopback and headless Chromium
(/usr/bin/chromium via Playwright, the players written by hand in tests/preview/whep_page.js, recording with
tests/av_recorder.js).
  codecs:  aiortc's own VP8 and H.264 encoders on the engine's 512 x 512 portrait, ms per frame and the rate they make
  sync:    vowel bursts at known engine times (tests/preview/whep_sync.py): per burst the A/V offset (mouth shown vs
           voice delivered for playout, minus the same at the engine; > 0: voice ahead) and glass-to-glass (engine
           frame time -> display); with the preview's 150 ms jitter floor, and with none (a plain player)
  viewers: 1, 2, 4, ... players of one avatar; per step the frames each session sent per second, the frames it
           skipped, and the bridge's CPU; stops when a viewer gets < 24 fps or skips frames
  rss:     100 WHEP sessions opened (connected) and DELETEd one after another; the bridge's RSS before and after
  python bench/bench_webrtc.py [--bursts 10] [--max-viewers 12] [--cycles 100] [--only codecs|sync|viewers|rss]
"""

from __future__ import annotations

import argparse
import fractions
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _services import services  # noqa: E402  (bench/ is on sys.path when run)

from bridge.whep import session_tag  # noqa: E402
from engine.client import EngineClient  # noqa: E402
from engine.stats import percentile  # noqa: E402
from tests.preview.conftest import CHROMIUM  # noqa: E402
from tests.preview.test_whep import PLAYER, WEBRTC_ARGS  # noqa: E402
from tests.preview.whep_sync import measure  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def codecs(frames: int = 100) -> None:
    import av
    import simplejpeg
    from aiortc.codecs.h264 import H264Encoder
    from aiortc.codecs.vpx import Vp8Encoder

    from engine.core import default_portrait

    img = simplejpeg.decode_jpeg(default_portrait(), colorspace="RGB")
    pictures = []
    for i in range(frames):  # a talking face's change: the mouth region moves, the rest stays
        m = img.copy()
        m[300:340, 200:300] = (i * 9) % 255
        f = av.VideoFrame.from_ndarray(m, format="rgb24").reformat(format="yuv420p")
        f.pts, f.time_base = i * 3600, fractions.Fraction(1, 90_000)
        pictures.append(f)
    print(f"codecs: {img.shape[1]}x{img.shape[0]}, {frames} frames, aiortc's encoders (one per viewer)")
    for name, make, rate in (("VP8", Vp8Encoder, 800), ("H.264", H264Encoder, 800), ("VP8", Vp8Encoder, 1500),
                             ("H.264", H264Encoder, 1500)):
        enc = make()
        enc.target_bitrate = rate * 1000
        ms, size = [], 0
        for i, f in enumerate(pictures):
            started = time.perf_counter()
            payloads, _ = enc.encode(f, i == 0)
            ms.append((time.perf_counter() - started) * 1000)
            size += sum(len(p) for p in payloads)
        steady = ms[5:]
        print(f"  {name:5s} @ {rate:4d} kbps: encode ms p50 {statistics.median(steady):5.1f} p95 "
              f"{percentile(steady, 95):5.1f}; made {size * 8 / len(ms) * 25 / 1000:5.0f} kbit/s at 25 fps")


def bridge_pid(port: int) -> int:
    """The bridge child of this process (found by its --port / LP_BRIDGE_PORT in its environment)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"-m\x00bridge" in cmd and f"LP_BRIDGE_PORT={port}".encode() in env:
            return int(entry.name)
    raise RuntimeError("bridge process not found")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_player(browser, url: str, jitter_ms: int):
    tab = browser.new_page()
    tab.goto(url + "/whep/session")
    tab.add_script_tag(content=PLAYER)
    result = tab.evaluate("([p, j]) => whepPlay(p, j)", ["/whep", jitter_ms])
    if result["status"] != 201:
        raise RuntimeError(result)
    tab.wait_for_function("window.samples.length && window.samples.at(-1).framesDecoded > 25", timeout=60_000)
    return tab, result


def close_player(url: str, tab, result: dict) -> None:
    """DELETE first (a closed tab alone is noticed by ICE consent only after ~30 s, and streams on until then)."""
    httpx.delete(url + result["location"])
    tab.close()


def sync_run(browser, url: str, request, frame_addr: str, avatar: str, jitter_ms: int, bursts: int) -> None:
    tab, result = open_player(browser, url, jitter_ms)
    try:
        def origin() -> float:
            detail = httpx.get(url + "/whep/session").json()["detail"]
            tag = session_tag(result["location"].rsplit("/", 1)[1])
            return next(s["audio_origin"] for s in detail if s["tag"] == tag)

        started = time.monotonic()
        settled = "settled"
        try:
            tab.wait_for_function("avSettled(25, 10)", timeout=30_000, polling=200)
        except Exception:
            settled = "NOT settled"
        settle_s = time.monotonic() - started
        r = measure(tab, request, frame_addr, avatar, count=bursts, audio_origin=origin)
        label = f"jitter floor {jitter_ms} ms" if jitter_ms else "no jitter floor (a plain player)"
        if not r.offsets_ms:
            print(f"  {label}: no burst found at both ends")
            return
        print(f"  {label}: {len(r.offsets_ms)}/{bursts} bursts; the browser's own A/V estimate {settled} "
              f"(within 25 ms) {settle_s:.1f} s after the first 25 frames")
        worst = percentile([abs(x) for x in r.offsets_ms], 95)
        print(f"    A/V offset ms      p50 {percentile(r.offsets_ms, 50):6.1f}  p95 of |offset| {worst:5.1f}"
              f"  (all: {[round(x) for x in r.offsets_ms]})")
        print(f"    glass-to-glass ms  video p50 {percentile(r.video_g2g_ms, 50):5.0f}"
              f" p95 {percentile(r.video_g2g_ms, 95):5.0f};"
              f"  voice p50 {percentile(r.audio_g2g_ms, 50):5.0f} p95 {percentile(r.audio_g2g_ms, 95):5.0f}")
    finally:
        close_player(url, tab, result)


def viewers(browser, url: str, pid: int, most: int) -> None:
    tabs = []
    steps = [n for n in (1, 2, 4, 6, 8, 10, 12, 16) if n <= most]
    idle_cpu0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(3)
    print(f"  bridge CPU with no viewer: {(cpu_s(pid) - idle_cpu0) / (time.monotonic() - t0) * 100:5.1f} %")
    try:
        for n in steps:
            while len(tabs) < n:
                tabs.append(open_player(browser, url, 150))
            time.sleep(2)
            before = {s["tag"]: s for s in httpx.get(url + "/whep/session").json()["detail"]}
            c0, t0 = cpu_s(pid), time.monotonic()
            time.sleep(5)
            elapsed = time.monotonic() - t0
            cpu = (cpu_s(pid) - c0) / elapsed * 100
            after = {s["tag"]: s for s in httpx.get(url + "/whep/session").json()["detail"]}
            fps = [(after[k]["video_sent"] - before[k]["video_sent"]) / elapsed for k in after if k in before]
            skipped = sum(after[k]["video_skipped"] - before[k]["video_skipped"] for k in after if k in before)
            print(f"  {n:2d} viewers: sent fps min {min(fps):5.1f} median {statistics.median(fps):5.1f}; "
                  f"skipped {skipped:3d}; bridge CPU {cpu:5.1f} % ({cpu / n:4.1f} % per viewer)")
            if min(fps) < 24 or skipped > n:
                print(f"  -> frames drop at {n} viewers")
                break
    finally:
        for tab, result in tabs:
            close_player(url, tab, result)


def rss(browser, url: str, pid: int, cycles: int) -> None:
    tab = browser.new_page()
    tab.goto(url + "/whep/session")
    tab.add_script_tag(content=PLAYER)
    marks = {}
    states = []
    for i in range(cycles):
        states.append(tab.evaluate("whepCycle()"))
        if (i + 1) % 25 == 0 or i + 1 == 10:
            time.sleep(1)
            marks[i + 1] = rss_mb(pid)
    tab.close()
    time.sleep(10)  # sessions closed last are let go within ~8 s (bridge/whep.py _stop_late_senders)
    marks["rest"] = rss_mb(pid)
    stats = httpx.get(url + "/whep/session").json()
    print(f"  {cycles} connect/disconnect cycles: {states.count('connected')} connected; bridge RSS MB "
          + ", ".join(f"after {k}: {v:.1f}" for k, v in marks.items())
          + " (rest: 10 s later)"
          + f"; open sessions after: {stats['sessions']}, feeds: {stats['feeds']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--max-viewers", type=int, default=12)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--only", choices=("codecs", "sync", "viewers", "rss"), help="one part only")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with open("/proc/loadavg") as f:
        print(f"machine: {os.cpu_count()} cores, load average {f.read().split()[:3]}")
    def part(name: str) -> bool:
        return args.only in (None, name)

    if part("codecs"):
        codecs()
    if args.only == "codecs":
        return
    os.environ.update({"LP_WHEP_MAX_PER_AVATAR": "32", "LP_WHEP_MAX_VIEWERS": "32"})
    with services() as svc, sync_playwright() as p:
        port = int(svc.url.rsplit(":", 1)[1])
        pid = bridge_pid(port)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=WEBRTC_ARGS)
        with EngineClient(svc.command_addr, timeout_ms=20_000) as engine:
            def request(message: dict) -> dict:
                return engine.request(message)

            avatar = engine.call("list_avatars")["default"]
            engine.call("stream", avatar=avatar, fps=25)
            if part("sync"):
                print("sync and delay (one viewer, 25 fps):")
                for jitter in (150, 0):
                    sync_run(browser, svc.url, request, svc.frame_addr, avatar, jitter, args.bursts)
            if part("viewers"):
                print("viewers of one avatar (each a Chromium player on this same machine, decoding VP8 too):")
                viewers(browser, svc.url, pid, args.max_viewers)
            if part("rss"):
                print("hygiene:")
                rss(browser, svc.url, pid, args.cycles)
        browser.close()


if __name__ == "__main__":
    main()
