"""The pipecat service's figures: the latency the avatar adds to the voice, frames/s, the A/V offset at the browser.

Starts a real engine (offline renderer unless LP_MODELS_DIR is set) on loopback.
  latency: LivePortraitVideoService in a real pipecat pipeline; espeak-ng sentences fed as a streaming TTS does
           (20 ms chunks at real-time pace); per chunk, the time from entering the service to its first sample
           leaving it with its frame (the avatar's added latency: speak round trip, the lead the mouth analysis
           needs, render + JPEG + PUB); frames/s pushed; and the mouth-vs-voice lag at the service's output
  browser: examples/pipecat_bot.py and headless Chromium with a fake microphone (tests/pipecat/test_bot_browser.py's
           page recorder): the lag between the mouth shown and the voice played, minus the lag at the service's
           output (the analysis' own lead cancels): the A/V offset the transport and the browser add (> 0: face late)
  frame:   the service's cost per frame (JPEG decode + cut + scale) for the full frame and a 512 x 512 cut
  python bench/bench_pipecat.py [--sentences 4] [--fps 25] [--only latency|browser|frame] [--bot-args "..."]
  (--bot-args "--no-voice-clock": the bot as before its frames waited for the voice, for before/after runs)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipecat.frames.frames import OutputImageRawFrame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame  # noqa: E402

from engine.client import EngineClient, FrameSubscriber  # noqa: E402
from engine.integrations.pipecat import LivePortraitVideoService  # noqa: E402
from engine.speech import decode_audio  # noqa: E402
from tests.pipecat.conftest import Run, feed_realtime, run_pipeline, tts_chunks  # noqa: E402
from tests.service.conftest import EngineProcess, free_port  # noqa: E402

SENTENCES = (
    "Hello there, my mom bought a puppy, and we walked it by the river.",
    "The weather was lovely, so we stayed out until the sun went down.",
    "Tomorrow I would like to visit the museum and see the old paintings.",
    "Would you like to come along, or do you have other plans?",
)


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(len(data) * q))]


def voice(text: str, folder: Path) -> tuple[np.ndarray, int]:
    path = folder / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    pcm = decode_audio(path.read_bytes())
    return (np.clip(pcm.samples, -1, 1) * 32767).astype(np.int16), pcm.sample_rate


def output_lag(run: Run) -> tuple[float, float]:
    """r and lag (ms, > 0: mouth after voice) at the service's output: each audio piece placed at the time it was
    pushed, each frame's jawOpen at the time it was pushed, on a 10 ms grid."""
    a_t, a_v, f_t, f_j = [], [], [], []
    for seen in run.down:
        f = seen.frame
        if isinstance(f, TTSAudioRawFrame):
            x = np.frombuffer(f.audio, "<i2").astype(np.float64) / 32768
            step = int(f.sample_rate * 0.01)
            for i in range(0, len(x), step):
                a_t.append(seen.t * 1000 + i / f.sample_rate * 1000)
                a_v.append(float(np.sqrt(np.mean(x[i:i + step] ** 2))))
        elif isinstance(f, OutputImageRawFrame):
            f_t.append(seen.t * 1000)
            f_j.append(float(f.metadata["liveportrait"]["jawOpen"] or 0.0))
    return best_lag(np.array(a_t), np.array(a_v), np.array(f_t), np.array(f_j), a_t[0], a_t[-1])


def best_lag(a_t: np.ndarray, a_v: np.ndarray, f_t: np.ndarray, f_v: np.ndarray, lo: float,
             hi: float) -> tuple[float, float]:
    """r and lag (ms, > 0: mouth after voice), both smoothed over 80 ms as tests/pipecat/test_bot_browser.py does."""
    from tests.pipecat.test_bot_browser import smooth

    grid = np.arange(lo, hi, 10.0)
    order = np.argsort(a_t)
    level = smooth(np.interp(grid, a_t[order], a_v[order], left=0, right=0))
    out = []
    for lag in range(-400, 401, 10):
        mouth = smooth(np.interp(grid + lag, f_t, f_v))
        out.append((float(np.corrcoef(level, mouth)[0, 1]), float(lag)))
    return max(out)


def bench_latency(engine: EngineProcess, sentences: int, fps: float, folder: Path) -> float:
    svc = LivePortraitVideoService(command_addr=engine.command_addr, frame_addr=engine.frame_addr, fps=fps,
                                   width=512, height=512)
    voices = [voice(s, folder) for s in SENTENCES[:sentences]]

    async def script(worker) -> None:
        await asyncio.sleep(0.5)
        for pcm, rate in voices:
            await worker.queue_frame(TTSStartedFrame())
            await feed_realtime(worker, tts_chunks(pcm, rate))
            await worker.queue_frame(TTSStoppedFrame())
            await asyncio.sleep(0.6)

    run = asyncio.run(run_pipeline([svc], script))
    added = svc.stats.added_ms
    images = run.images()
    rate = (len(images) - 1) / (images[-1].t - images[0].t)
    r, lag = output_lag(run)
    print(f"latency: {len(added)} TTS chunks; added latency ms median {statistics.median(added):.0f}, "
          f"p95 {pct(added, 0.95):.0f}, min {min(added):.0f}, max {max(added):.0f} (target <= 150)")
    print(f"latency: frames pushed {rate:.1f}/s (stream at {fps:g}); mouth vs voice at the service's output: "
          f"r {r:.2f}, lag {lag:.0f} ms")
    return lag


def bench_browser(engine: EngineProcess, fps: float, folder: Path, service_lag: float,
                  bot_args: tuple[str, ...] = ()) -> None:
    from playwright.sync_api import sync_playwright

    from tests.pipecat.test_bot_browser import ANSWER, RECORDER, SECOND, SIZE, USER_1, analyse
    from tests.preview.conftest import CHROMIUM, CHROMIUM_ARGS

    default = engine.request({"v": 1, "cmd": "list_avatars"})["default"]
    engine.request({"v": 1, "cmd": "set_idle", "avatar": default, "enabled": False})
    u1 = folder / "u1.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(u1), USER_1], check=True)
    sil, tail, mic = folder / "sil.wav", folder / "tail.wav", folder / "mic.wav"
    subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", str(sil), "trim", "0", "2.5"], check=True)
    subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", str(tail), "trim", "0", "14"], check=True)
    subprocess.run(["sox", str(sil), str(u1), str(tail), "-r", "48000", str(mic)], check=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(folder / "bot.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "pipecat_bot.py"), "--port", str(port),
                             "--command-addr", engine.command_addr, "--frame-addr", engine.frame_addr,
                             "--fps", str(fps), "--line", ANSWER, "--line", SECOND,
                             *bot_args],
                            cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(8)
        args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"]
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=args)
            page = chromium.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.add_script_tag(path=str(RECORDER))
            page.click("#connect")
            page.wait_for_function("window.pc && pc.connectionState === 'connected' && video.videoWidth > 0",
                                   timeout=30_000)
            page.evaluate(f"avRecord({SIZE}, true)")
            time.sleep(16)
            rec = page.evaluate("avStop()")
            chromium.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    rx = analyse(rec)
    voiced = rx.audio_t[rx.level > 0.02]
    if not len(voiced):
        print("browser: the bot did not answer (see its log)", folder / "bot.log")
        return
    r, lag = best_lag(rx.audio_t, rx.level, rx.frames_t, rx.mouth, voiced[0], voiced[-1])
    thirds = np.linspace(voiced[0], voiced[-1], 4)
    parts = [best_lag(rx.audio_t, rx.level, rx.frames_t, rx.mouth, a, b)
             for a, b in zip(thirds[:-1], thirds[1:], strict=True)]
    print("browser: by thirds of the answer (r, lag ms): " + ", ".join(f"({x:.2f}, {y:.0f})" for x, y in parts))
    shown = (len(rx.frames_t) - 1) / ((rx.frames_t[-1] - rx.frames_t[0]) / 1000)
    print(f"browser: frames shown {shown:.1f}/s; mouth vs voice: r {r:.2f}, lag {lag:.0f} ms; A/V offset "
          f"(lag minus the service's {service_lag:.0f} ms) {lag - service_lag:+.0f} ms (> 0: face late; target "
          f"|median| <= 40)")


def bench_frame(engine: EngineProcess) -> None:
    with EngineClient(engine.command_addr) as client:
        client.stream("default", 5)
        with FrameSubscriber(engine.frame_addr, None) as sub:
            frame = sub.recv(5000)
        client.stream("default", 0)
    assert frame is not None
    for size in ((None, None), (512, 512)):
        svc = LivePortraitVideoService(width=size[0], height=size[1])
        t0 = time.perf_counter()
        for _ in range(50):
            out = svc._image(frame)
        ms = (time.perf_counter() - t0) / 50 * 1000
        print(f"frame: engine frame {frame.header.get('width')}x{frame.header.get('height')} -> {out.size[0]}x"
              f"{out.size[1]}: {ms:.1f} ms per frame in the service ({len(out.image) / 1e6:.2f} MB RGB to the "
              f"transport)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sentences", type=int, default=4)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--only", choices=("latency", "browser", "frame"))
    p.add_argument("--bot-args", default="", help="more arguments for examples/pipecat_bot.py (e.g. the A/V "
                   "options: \"--no-voice-clock --video-delay-ms 0\" is the bot before issue 25's fix)")
    args = p.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine = EngineProcess(folder).start()
        try:
            lag = 0.0
            if args.only in (None, "latency", "browser"):
                lag = bench_latency(engine, args.sentences, args.fps, folder)
            if args.only in (None, "browser"):
                bench_browser(engine, args.fps, folder, lag, tuple(args.bot_args.split()))
            if args.only in (None, "frame"):
                bench_frame(engine)
        finally:
            engine.stop()


if __name__ == "__main__":
    main()
