"""Never freeze a live face (issue 16): uploads, renders and talking clips beside two live streams.

Real engine and bridge processes on loopback, real uploads (the cat, the coffee cup, the three-quarter view, a
6000x6000 portrait, a 36 MP faceless PNG) over ZMQ and HTTP, real espeak-ng speech. bench/bench_latency.py prints
the real figures.

The bounds are fixed, between what a loaded shared machine shows and the freezes they guard against: dlib's CNN on
a thread of the engine held every thread for 1-6 s per upload, and a live ``speak`` queued behind a clip waited
for the whole clip (tens of seconds). They never widen from what the machine showed just before: a bound that
follows a noisy window can pass anything. A short quiet window is still measured and printed beside the figures,
to tell a loaded machine from a regression when one fails.
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
    wait_until,
)

FPS = 25.0
MAX_FRAME_GAP_S = 0.9  # a 1-6 s GIL hold is a freeze; quiet: ~50 ms, a loaded 2-core CI machine: a few 100 ms
MAX_HEALTH_MS = 900.0  # quiet: ~7 ms
MAX_SPEAK_MS = 900.0  # quiet: ~15 ms; behind a 40 s clip: seconds
QUIET_S = 4.0  # the streams and probes alone, printed beside the figures (what the shared machine itself costs)
pytestmark = pytest.mark.timeout(900)  # five large uploads twice, a 40 s clip: minutes on a loaded 2-core machine


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
    # The bridge's default 20 s per try is what a quiet machine needs many times over; a loaded CI machine can
    # take longer for the CNN + prepare of one upload, and a 503 from that timeout is not what this test is about.
    bridge = BridgeProcess(tmp, engine.command_addr,
                           env={"LP_ENGINE_TIMEOUT_MS": "180000", "LP_ENGINE_RETRIES": "0"}).start()
    watcher = FrameWatcher(engine.frame_addr)
    avatars = []
    try:
        for name in ("s1.jpg", "astronaut.jpg"):
            reply = engine.request({"v": 1, "cmd": "set_source", "image": (DATA / name).read_bytes()}, 120_000)
            assert reply["ok"], reply
            avatars.append(reply["avatar"])
            assert engine.request({"v": 1, "cmd": "stream", "avatar": reply["avatar"], "fps": FPS})["ok"]
        wait_until(lambda: all(len(watcher.log(aid).arrivals) >= 2 * FPS for aid in avatars), 60)  # both flowing
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
    """The uploads must not add a freeze of their own (the CNN on a thread of the engine held everything 1-6 s)."""
    items = uploads()  # made before the clock starts: building a 6000x6000 JPEG is this process's work
    health = Prober(live.engine.command_addr, lambda: {"v": 1, "cmd": "health"}, interval=0.05)
    quiet_from = time.monotonic()
    time.sleep(QUIET_S)
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
    quiet_health = [ms for at, ms in health.times if quiet_from <= at < started]
    health_ms = health.since(started)
    quiet_gap = max(live.watcher.log(aid).max_gap(quiet_from, started) for aid in live.avatars)
    gaps = {aid: live.watcher.log(aid).max_gap(started, ended) for aid in live.avatars}
    gap_bound, health_bound = MAX_FRAME_GAP_S, MAX_HEALTH_MS
    print(f"\nquiet {QUIET_S:g} s: health {spread(quiet_health)}, largest frame gap {quiet_gap * 1000:.0f} ms\n"
          f"uploads ({ended - started:.1f} s): health {spread(health_ms)}, largest frame gap per stream "
          f"{[round(g * 1000) for g in gaps.values()]} ms; bounds {gap_bound * 1000:.0f} / {health_bound:.0f} ms")
    for name, via, got, face in answers:
        want = ("ok" if face else "no_face") if via == "zmq" else (200 if face else 422)
        assert got == want, f"{name} over {via}: {got}, not {want}"
    assert not health.errors, health.errors
    assert len(health_ms) > 10 * (ended - started) * 0.5, "health was not asked often enough to tell"
    assert max(health_ms) < health_bound, f"health took {max(health_ms):.0f} ms"
    for aid, gap in gaps.items():
        frames = [t for t in live.watcher.log(aid).arrivals if started <= t <= ended]
        assert len(frames) >= FPS * (ended - started) * 0.3, f"{aid}: only {len(frames)} frames"
        assert gap < gap_bound, f"{aid}: a {gap * 1000:.0f} ms gap between frames while uploading"


def _clips_running(engine: EngineProcess) -> int:
    return int(engine.request({"v": 1, "cmd": "health"})["clips"]["running"])


def _speak(engine: EngineProcess, avatar: str, audio: bytes) -> tuple[dict, float]:
    with EngineClient(engine.command_addr, timeout_ms=30_000, retries=0) as client:
        sent = time.monotonic()
        reply = client.request({"v": 1, "cmd": "speak", "avatar": avatar, "audio": audio, "format": "wav"})
        return reply, (time.monotonic() - sent) * 1000


def test_a_long_clip_leaves_live_speech_on_time_and_stops_when_its_client_leaves(live: Live) -> None:
    """Live speech beside a 40 s clip is answered and drawn on time; the same speech alone just before is printed."""
    clip_audio, live_audio = speech_wav(40.0), speech_wav(2.0)
    aid = live.avatars[0]
    quiet_from = time.monotonic()
    quiet_ms = []
    for _ in range(2):
        reply, ms = _speak(live.engine, aid, live_audio)
        quiet_ms.append(ms)
        time.sleep(reply["end"] - reply["start"] + 0.3)
    quiet_gap = live.watcher.log(aid).max_gap(quiet_from)
    speak_bound, gap_bound = MAX_SPEAK_MS, MAX_FRAME_GAP_S
    sock = speak_over_raw_http(live.bridge.port, (DATA / "s5.jpg").read_bytes(), clip_audio)
    try:
        deadline = time.monotonic() + 60
        while _clips_running(live.engine) == 0:
            assert time.monotonic() < deadline, "the clip never started"
            time.sleep(0.1)
        time.sleep(1.0)  # the clip is drawing its frames now
        sent = time.monotonic()
        reply, speak_ms = _speak(live.engine, aid, live_audio)
        assert reply["ok"], reply
        time.sleep(reply["end"] - reply["start"] + 0.6)  # the speech is heard, and its frames are out
        assert _clips_running(live.engine) == 1, "the clip should still be running"
        log = live.watcher.log(aid)
        spoken = [(arrival, ts, jaw) for arrival, ts, jaw in zip(log.arrivals, log.ts, log.jaw, strict=True)
                  if reply["start"] <= ts <= reply["end"]]
        late_ms = [(arrival - ts) * 1000 for arrival, ts, _ in spoken]
        print(f"\nlive speak alone: {[round(m) for m in quiet_ms]} ms, largest frame gap {quiet_gap * 1000:.0f} ms; "
              f"during a 40 s clip: reply {speak_ms:.0f} ms; {len(spoken)} frames in the speech, jawOpen max "
              f"{max((j for *_, j in spoken), default=0):.2f}, frame delay {spread(late_ms)}; "
              f"bounds {speak_bound:.0f} / {gap_bound * 1000:.0f} ms")
        assert speak_ms < speak_bound, f"live speak took {speak_ms:.0f} ms behind a clip"
        assert len(spoken) >= FPS * (reply["end"] - reply["start"]) * 0.3, "frames missing while speaking"
        assert max(j for *_, j in spoken) > 0.15, "the live mouth did not move"
        assert max(late_ms) < gap_bound * 1000, "speech frames came late"
        assert log.max_gap(since=sent) < gap_bound
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
