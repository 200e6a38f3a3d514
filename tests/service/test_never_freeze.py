"""Never freeze a live face (issue 16): uploads, renders and talking clips beside two live streams.

Real engine and bridge processes on loopback, real uploads (the cat, the coffee cup, the three-quarter view, a
6000x6000 portrait, a 36 MP faceless PNG) over ZMQ and HTTP, real espeak-ng speech. The bounds are loose (2-3x the
issue's figures: this runs on a shared CI machine); bench/bench_latency.py prints the real figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from engine.client import EngineClient
from tests.service.conftest import DATA, BridgeProcess, EngineProcess
from tests.service.live import (
    FrameWatcher,
    Prober,
    faceless_png,
    speak_over_raw_http,
    speech_wav,
    spread,
    upscaled_portrait,
)

FPS = 25.0
MAX_FRAME_GAP_S = 0.36  # the 120 ms, x3
MAX_HEALTH_MS = 450.0  # the 150 ms, x3
MAX_SPEAK_MS = 300.0  # the 100 ms, x3


@dataclass
class Live:
    engine: EngineProcess
    bridge: BridgeProcess
    watcher: FrameWatcher
    avatars: list[str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("never-freeze")
    engine = EngineProcess(tmp).start()
    bridge = BridgeProcess(tmp, engine.command_addr).start()
    watcher = FrameWatcher(engine.frame_addr)
    avatars = []
    try:
        for name in ("s1.jpg", "astronaut.jpg"):
            reply = engine.request({"v": 1, "cmd": "set_source", "image": (DATA / name).read_bytes()}, 120_000)
            assert reply["ok"], reply
            avatars.append(reply["avatar"])
            assert engine.request({"v": 1, "cmd": "stream", "avatar": reply["avatar"], "fps": FPS})["ok"]
        time.sleep(2.0)  # both streams steady
        yield Live(engine, bridge, watcher, avatars)
    finally:
        watcher.close()
        bridge.stop()
        engine.stop()


def uploads() -> list[tuple[str, bytes, bool]]:
    """(name, bytes, has a face the engine must find)."""
    return [("the cat", (DATA / "chelsea.jpg").read_bytes(), False),
            ("the coffee cup", (DATA / "coffee.jpg").read_bytes(), False),
            ("the three-quarter view", (DATA / "s10.jpg").read_bytes(), True),
            ("a 6000x6000 portrait", upscaled_portrait(DATA / "s3.jpg", 6000), True),
            ("a 36 MP faceless PNG", faceless_png(36.0), False)]


def test_uploads_over_zmq_and_http_never_freeze_the_streams_or_health(live: Live) -> None:
    items = uploads()  # made before the clock starts: building a 6000x6000 JPEG is this process's work
    health = Prober(live.engine.command_addr, lambda: {"v": 1, "cmd": "health"}, interval=0.05)
    started = time.monotonic()
    answers = []
    try:
        with EngineClient(live.engine.command_addr, timeout_ms=120_000, retries=0) as zmq_client, \
                httpx.Client(timeout=120) as http:
            for name, data, face in items:
                reply = zmq_client.request({"v": 1, "cmd": "set_source", "image": data})
                answers.append((name, "zmq", "ok" if reply["ok"] else reply["error"]["code"], face))
                # one more byte: the same pixels, another avatar id, so HTTP goes through the prep process again
                r = http.post(live.bridge.url + "/api/render", files={"source_image": ("upload", data + b"\0")})
                answers.append((name, "http", r.status_code, face))
    finally:
        ended = time.monotonic()
        health.close()
    health_ms = health.since(started)
    gaps = {aid: live.watcher.log(aid).max_gap(since=started) for aid in live.avatars}
    print(f"\nuploads took {ended - started:.1f} s; health {spread(health_ms)}; "
          f"largest frame gap per stream (ms): {[round(g * 1000) for g in gaps.values()]}")
    for name, via, got, face in answers:
        want = ("ok" if face else "no_face") if via == "zmq" else (200 if face else 422)
        assert got == want, f"{name} over {via}: {got}, not {want}"
    assert not health.errors, health.errors
    assert len(health_ms) > 10 * (ended - started) * 0.5, "health was not asked often enough to tell"
    assert max(health_ms) < MAX_HEALTH_MS, f"health took {max(health_ms):.0f} ms"
    for aid, gap in gaps.items():
        frames = [t for t in live.watcher.log(aid).arrivals if started <= t <= ended]
        assert len(frames) >= FPS * (ended - started) * 0.5, f"{aid}: only {len(frames)} frames"
        assert gap < MAX_FRAME_GAP_S, f"{aid}: a {gap * 1000:.0f} ms gap between frames while uploading"


def _clips_running(engine: EngineProcess) -> int:
    return int(engine.request({"v": 1, "cmd": "health"})["clips"]["running"])


def test_a_long_clip_leaves_live_speech_on_time_and_stops_when_its_client_leaves(live: Live) -> None:
    clip_audio, live_audio = speech_wav(40.0), speech_wav(2.0)
    sock = speak_over_raw_http(live.bridge.port, (DATA / "s5.jpg").read_bytes(), clip_audio)
    try:
        deadline = time.monotonic() + 60
        while _clips_running(live.engine) == 0:
            assert time.monotonic() < deadline, "the clip never started"
            time.sleep(0.1)
        time.sleep(1.0)  # the clip is drawing its frames now
        aid = live.avatars[0]
        with EngineClient(live.engine.command_addr, timeout_ms=30_000, retries=0) as client:
            sent = time.monotonic()
            reply = client.request({"v": 1, "cmd": "speak", "avatar": aid, "audio": live_audio, "format": "wav"})
            speak_ms = (time.monotonic() - sent) * 1000
        assert reply["ok"], reply
        time.sleep(reply["end"] - reply["start"] + 0.6)  # the speech is heard, and its frames are out
        assert _clips_running(live.engine) == 1, "the clip should still be running"
        log = live.watcher.log(aid)
        spoken = [(arrival, ts, jaw) for arrival, ts, jaw in zip(log.arrivals, log.ts, log.jaw, strict=True)
                  if reply["start"] <= ts <= reply["end"]]
        late_ms = [(arrival - ts) * 1000 for arrival, ts, _ in spoken]
        print(f"\nlive speak during a 40 s clip: reply {speak_ms:.0f} ms; {len(spoken)} frames in the speech, "
              f"jawOpen max {max((j for *_, j in spoken), default=0):.2f}, frame delay {spread(late_ms)}")
        assert speak_ms < MAX_SPEAK_MS, f"live speak took {speak_ms:.0f} ms behind a clip"
        assert len(spoken) >= FPS * (reply["end"] - reply["start"]) * 0.5, "frames missing while speaking"
        assert max(j for *_, j in spoken) > 0.15, "the live mouth did not move"
        assert max(late_ms) < MAX_FRAME_GAP_S * 1000, "speech frames came late"
        assert log.max_gap(since=sent) < MAX_FRAME_GAP_S
    finally:
        sock.close()  # the client leaves: the bridge cancels the clip
    hung_up = time.monotonic()
    while _clips_running(live.engine) > 0:
        assert time.monotonic() - hung_up < 15, "the clip kept running after its client left"
        time.sleep(0.1)


def test_cancel_clip_over_zmq_answers_the_clip_cancelled(live: Live) -> None:
    audio = speech_wav(20.0)
    answer: dict = {}

    def make_clip() -> None:
        with EngineClient(live.engine.command_addr, timeout_ms=120_000, retries=0) as client:
            answer.update(client.request({"v": 1, "cmd": "speak_clip", "avatar": live.avatars[1], "audio": audio,
                                          "format": "wav", "clip": "test-cancel"}))

    thread = threading.Thread(target=make_clip)
    thread.start()
    deadline = time.monotonic() + 30
    while _clips_running(live.engine) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = live.engine.request({"v": 1, "cmd": "cancel_clip", "clip": "test-cancel"})
    assert cancelled["ok"] and cancelled["cancelled"] is True
    thread.join(30)
    assert answer["ok"] is False and answer["error"]["code"] == "cancelled", answer
    again = live.engine.request({"v": 1, "cmd": "cancel_clip", "clip": "test-cancel"})
    assert again["ok"] and again["cancelled"] is False
