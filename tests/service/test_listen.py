"""Listening, measured on the published frames of a real engine: espeak-ng speech with pauses is streamed as the
user's microphone (100 ms int16 chunks, in real time, through the command socket), the avatar's frames come off the
PUB socket and a landmark detector reads them back (tests/service/facemeter.py), never the controls.

- nods land in the pauses (300-800 ms in, plus a chunk) and none while the user talks;
- the mouth stays closed and the eyes hold the camera (the idle gaze wander damped);
- a phrase that ends with a rising pitch (espeak-ng's question) raises the brows, statements do not;
- nothing but frames is published while the user talks (no user audio on PUB);
- thinking looks away and up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from engine.animation.listener import ListenerConfig
from engine.client import EngineClient
from engine.speech.audio import decode_audio
from tests.service.conftest import EngineProcess
from tests.service.facemeter import FaceMeter, Reading, decode
from tests.speech.conftest import espeak

pytestmark = pytest.mark.timeout(180)

CHUNK_S = 0.1
FPS = 25.0
RATE = 16_000
CFG = ListenerConfig()
# (text, pause after it in seconds): two statements long enough for a nod, then a short question (a rise, no nod)
SCRIPT = [("I went to the market this morning and bought some bread.", 1.6), ("Then I walked home slowly.", 1.6),
          ("Is that true?", 1.6)]


@dataclass
class Heard:
    """What the test streamed and saw: the user's talk and pauses in engine time, and the frames' readings."""

    talk: list[tuple[float, float]]  # engine (start, end) of each phrase's voice
    questions: list[bool]
    frames: list[tuple[float, Reading]]  # (engine time, reading)
    topics: set[bytes]
    meter: FaceMeter
    gaze_unit: float  # iris offset (iod) of a gazeX 0.5 render


def user_voice(folder: Path) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The script as one 16 kHz int16 signal and each phrase's voiced (start, end) in audio seconds."""
    parts, talk, u = [], [], 0.0
    for i, (text, pause) in enumerate(SCRIPT):
        pcm = decode_audio(espeak(folder / f"p{i}.wav", text, "en", speed=150).read_bytes())
        x = np.interp(np.arange(0, pcm.duration, 1 / RATE), np.arange(len(pcm.samples)) / pcm.sample_rate,
                      pcm.samples)
        loud = np.nonzero(np.abs(x) > 0.02)[0]
        talk.append((u + loud[0] / RATE, u + loud[-1] / RATE))
        parts += [x, np.zeros(int(pause * RATE))]
        u += len(x) / RATE + pause
    return (np.concatenate(parts) * 32767).astype("<i2"), talk


def render(client: EngineClient, avatar: str, **controls: float) -> np.ndarray:
    return decode(client.render(avatar, expression="neutral", controls=controls).jpeg)


def at_rest(client: EngineClient, avatar: str) -> None:
    """The shared engine's default avatar as these tests measure it: neutral, head and eyes straight, nothing
    scheduled (tests before these, the fuzzer among them, leave expressions and controls on it)."""
    client.clear(avatar)
    client.set_expression(avatar, "neutral", 1.0, transition_ms=0)
    client.set_controls(avatar, {n: 0.0 for n in ("headPitch", "headYaw", "headRoll", "gazeX", "gazeY")},
                        transition_ms=0)
    client.set_speech_motion(avatar, 1.0)
    client.user_speech(avatar, False)  # a VAD's "the user talks" left on would hold every pause back


@pytest.fixture(scope="module")
def heard(engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory) -> Heard:
    signal, talk_u = user_voice(tmp_path_factory.mktemp("user"))
    with EngineClient(engine.command_addr, timeout_ms=20_000, retries=0) as client:
        avatar = client.list_avatars().default
        at_rest(client, avatar)
        meter = FaceMeter(render(client, avatar))
        meter.calibrate(render(client, avatar, headPitch=-4.0), -4.0)
        gaze_unit = abs(meter.read(render(client, avatar, gazeX=0.5)).iris[0] - meter.neutral.iris[0])
        client.set_idle(avatar, True, seed=11)  # idle life on (its gaze wanders: listening must damp it)
        client.set_turn(avatar, "idle", transition_ms=0)
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.subscribe(b"")  # everything the engine publishes
        sub.connect(engine.frame_addr)
        got: list[list[bytes]] = []
        stop = threading.Event()

        def receive() -> None:
            while not stop.is_set():
                if sub.poll(50):
                    got.append(sub.recv_multipart())

        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        client.stream(avatar, FPS)
        time.sleep(0.5)
        n = int(CHUNK_S * RATE)
        places: list[tuple[float, float, float]] = []  # (audio u, engine start, duration) per chunk
        end = None
        t0 = time.perf_counter()
        for i in range(0, len(signal), n):
            chunk = signal[i:i + n]
            time.sleep(max(0.0, t0 + (i + len(chunk)) / RATE - time.perf_counter()))  # a microphone: real time
            now = client.user_audio(avatar, chunk.tobytes(), RATE).now
            dur = len(chunk) / RATE
            start = now - dur if end is None else max(end, now - dur)  # the listener's placement rule
            end = start + dur
            places.append((i / RATE, start, dur))
        time.sleep(0.3)
        client.stream(avatar, 0)
        stop.set()
        thread.join(5)
        sub.close(0)
        client.set_turn(avatar, "idle")
        client.set_idle(avatar, True, seed=0)

    def engine_time(u: float) -> float:
        k = max(j for j, p in enumerate(places) if p[0] <= u + 1e-9)
        return places[k][1] + u - places[k][0]

    frames = []
    for parts in got:
        if parts[0].startswith(b"frame."):
            header = msgpack.unpackb(parts[1])
            frames.append((float(header["ts"]), meter.read(decode(parts[2]))))
    frames.sort(key=lambda f: f[0])
    talk = [(engine_time(a), engine_time(b)) for a, b in talk_u]
    return Heard(talk, [text.endswith("?") for text, _ in SCRIPT], frames, {p[0] for p in got}, meter, gaze_unit)


def nods(heard: Heard) -> list[tuple[float, float]]:
    """(engine time, depth in degrees) of each dip of the measured head pitch below its running median (frames with
    the lids half down left out: a blink drags dlib's eye corners down with the lids)."""
    frames = [(t, r) for t, r in heard.frames if r.open_eye > 0.7 * heard.meter.neutral.open_eye]
    ts = np.array([t for t, _ in frames])
    pitch = np.array([heard.meter.degrees(r) for _, r in frames])
    base = np.array([np.median(pitch[np.abs(ts - t) < 1.0]) for t in ts])
    dip = np.convolve(pitch - base, np.ones(3) / 3, "same")
    out = []
    for i in range(1, len(ts) - 1):
        if dip[i] <= dip[i - 1] and dip[i] < dip[i + 1] and dip[i] < -0.4 * CFG.nod_deg:
            out.append((float(ts[i]), float(-dip[i])))
    return out


def test_nods_land_in_the_pauses_and_none_while_the_user_talks(heard: Heard) -> None:
    assert len(heard.frames) > 5 * FPS  # the stream kept up well enough to see
    found = nods(heard)
    print("nods (engine s, deg):", found, "talk:", heard.talk)
    for t, _ in found:
        assert not any(a <= t <= b for a, b in heard.talk), (t, heard.talk)
    # a nod 300-800 ms into each statement's pause (+ one chunk), its deepest point ~nod_s/2 after its start
    for (_, b), question in zip(heard.talk[:2], heard.questions, strict=False):
        assert not question
        lo, hi = b + 0.3 + CFG.nod_s * 0.25, b + 0.8 + CHUNK_S + CFG.nod_s * 0.75
        assert any(lo <= t <= hi for t, _ in found), (b, found)


def test_the_mouth_stays_closed_and_the_eyes_hold_the_camera(heard: Heard) -> None:
    meter = heard.meter
    gaps = [r.gap - meter.neutral.gap for _, r in heard.frames]
    assert max(gaps) < 0.03  # lips shut: dlib reads speech openings of 0.05-0.3 iod
    listening_from = heard.talk[0][0] + 0.5
    open_eyes = [r for t, r in heard.frames if t > listening_from and r.open_eye > 0.8 * meter.neutral.open_eye]
    shifts = [abs(r.iris[0] - meter.neutral.iris[0]) for r in open_eyes]
    print("gaze unit (iod per 0.5):", heard.gaze_unit, "listening shift p95, max:", np.percentile(shifts, 95),
          max(shifts))
    assert len(open_eyes) > 3 * FPS
    assert np.percentile(shifts, 95) < 0.3 * heard.gaze_unit  # damped: the idle wander reaches 0.5 (one unit)


def test_a_rising_phrase_end_raises_the_brows(heard: Heard) -> None:
    meter = heard.meter
    rise = []
    for _, b in heard.talk:
        after = [r.brow - meter.neutral.brow for t, r in heard.frames if b < t < b + 1.6]
        rise.append(float(np.percentile(after, 90)))
    print("brow rise after each phrase (iod):", rise)
    *statements, question = rise
    assert question > 0.02 and question > 2.5 * max(max(statements), 0.005)


def test_nothing_but_frames_is_published_while_the_user_talks(heard: Heard) -> None:
    assert heard.topics and all(topic.startswith(b"frame.") for topic in heard.topics), heard.topics


def test_thinking_looks_away_and_up(engine: EngineProcess) -> None:
    with EngineClient(engine.command_addr, timeout_ms=20_000, retries=0) as client:
        avatar = client.list_avatars().default
        at_rest(client, avatar)
        client.set_idle(avatar, False)
        try:
            meter = FaceMeter(render(client, avatar))
            meter.calibrate(render(client, avatar, headPitch=-4.0), -4.0)
            assert client.set_turn(avatar, "thinking", transition_ms=200).turn == "thinking"
            time.sleep(0.6)
            thinking = meter.read(decode(client.render(avatar).jpeg))
            client.set_turn(avatar, "idle", transition_ms=0)
        finally:
            client.set_idle(avatar, True)
    assert meter.degrees(thinking) > 1.0  # head up
    print("thinking: head", meter.degrees(thinking), "iris", thinking.iris, "neutral", meter.neutral.iris)
    assert thinking.iris[0] - meter.neutral.iris[0] > 0.01  # eyes away (a gazeX of 0.5 reads ~0.03 iod) ...
    assert thinking.iris[1] - meter.neutral.iris[1] > -0.003  # ... and up with the head, not down in it
    assert thinking.gap - meter.neutral.gap < 0.03  # lips closed


def test_user_speech_while_the_avatar_speaks_is_a_barge_in_only_when_told_to_yield(engine: EngineProcess,
                                                                                  tmp_path: Path) -> None:
    wav = espeak(tmp_path / "answer.wav", "Let me tell you a long story about the sea and the ships.").read_bytes()
    voice = (np.sin(2 * np.pi * 140 * np.arange(1600) / RATE) * 6000).astype("<i2").tobytes()
    with EngineClient(engine.command_addr, timeout_ms=20_000, retries=0) as client:
        avatar = client.list_avatars().default
        spoken = client.call("speak", avatar=avatar, audio=wav)
        assert client.list_avatars().turns[avatar] == "speaking"  # implied by speak
        assert client.user_audio(avatar, voice, RATE).turn == "speaking"  # talk over it: it keeps the turn
        assert client.user_speech(avatar, True).turn == "speaking"
        reply = client.user_audio(avatar, voice, RATE, interrupt=True)  # told to yield: a barge-in
        assert reply.turn == "listening" and reply.now < spoken["end"]
        assert client.health().turns[avatar] == "listening"
        client.call("speak", avatar=avatar, audio=wav)
        assert client.user_speech(avatar, True, interrupt=True).turn == "listening"
        assert client.user_speech(avatar, False).turn == "listening"
        client.call("speak", avatar=avatar, audio=wav)
        assert client.clear(avatar).turn == "listening"
        assert client.set_turn(avatar, "idle").turn == "idle"
        assert client.user_audio(avatar, bytes(3200), RATE).turn == "idle"  # silence is not talk
        assert client.user_audio(avatar, voice, RATE).turn == "listening"  # talk is
        client.set_turn(avatar, "idle")
