"""Speech on the wire: the engine's ``speak``/``speak_clip`` commands and the bridge's ``POST /api/speak``, with real
espeak-ng speech made here, real sockets and a real MP4 decoded with PyAV. ARKit names in ``set_controls``."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from engine.client import EngineClient, EngineReplyError
from tests.service.conftest import DATA, BridgeProcess, EngineProcess

SENTENCE = "Hello, my mom bought a puppy. Please be happy."


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The sentence as espeak-ng's own WAV (22050 Hz mono 16-bit), about 3 s."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: tools/system-deps.sh installs it")
    out = tmp_path_factory.mktemp("speak") / "sentence.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "140", "-w", str(out), SENTENCE], check=True, capture_output=True,
                   timeout=60)
    return out.read_bytes()


def wav_duration(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def pcm_s16(data: bytes) -> tuple[bytes, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.readframes(w.getnframes()), w.getframerate()


@pytest.fixture(scope="module")
def client(engine: EngineProcess) -> EngineClient:
    with EngineClient(engine.command_addr, timeout_ms=20_000, retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def avatar(client: EngineClient) -> str:
    return client.set_source((DATA / "s1.jpg").read_bytes()).avatar


def health_ok(client: EngineClient) -> None:
    assert client.call("health")["status"] == "ok"


def test_speak_reply_says_when_the_audio_is_heard(client: EngineClient, avatar: str, sentence_wav: bytes) -> None:
    now = client.call("health")["now"]
    reply = client.call("speak", avatar=avatar, audio=sentence_wav, format="wav")
    assert reply["ok"] and reply["avatar"] == avatar and reply["renderer"]
    assert now <= reply["start"] <= now + 5.0
    assert reply["duration"] == pytest.approx(wav_duration(sentence_wav), abs=0.02)
    assert reply["end"] == pytest.approx(reply["start"] + reply["duration"], abs=0.02)
    later = client.call("speak", avatar=avatar, audio=sentence_wav, start=now + 100.0)
    assert later["start"] == pytest.approx(now + 100.0)
    client.call("clear", avatar=avatar)


def test_appended_chunks_continue_the_utterance(client: EngineClient, avatar: str, sentence_wav: bytes) -> None:
    raw, rate = pcm_s16(sentence_wav)
    half = len(raw) // 4 * 2
    first = client.call("speak", avatar=avatar, audio=raw[:half], format="pcm_s16le", sample_rate=rate)
    second = client.call("speak", avatar=avatar, audio=raw[half:], format="pcm_s16le", sample_rate=rate,
                         append=True)
    assert second["start"] == pytest.approx(first["end"], abs=0.01)  # seamless: the chunk follows the first
    assert second["end"] == pytest.approx(first["start"] + wav_duration(sentence_wav), abs=0.03)
    client.call("clear", avatar=avatar)




def test_streamed_frames_show_the_mouth_moving_then_shut_and_clear_stops_it(
        engine: EngineProcess, client: EngineClient, avatar: str, sentence_wav: bytes) -> None:
    client.call("stream", avatar=avatar, fps=25)
    try:
        with client.subscribe(engine.frame_addr, avatar) as sub:
            sub.recv(timeout_ms=5000)  # subscribed and flowing
            reply = client.call("speak", avatar=avatar, audio=sentence_wav)
            during, after = [], []
            deadline = time.monotonic() + reply["duration"] + 1.5
            while time.monotonic() < deadline:
                h = sub.recv(timeout_ms=2000).header
                (during if h["ts"] < reply["end"] else after).append(h)
            assert max(h["jawOpen"] for h in during if h["ts"] >= reply["start"]) > 0.15
            assert after and after[-1]["jawOpen"] < 0.02, "the mouth eases shut after the last sound"

            reply = client.call("speak", avatar=avatar, audio=sentence_wav)
            time.sleep(0.8)
            cleared = client.call("clear", avatar=avatar)["now"]
            late = []
            deadline = time.monotonic() + 0.6
            while time.monotonic() < deadline:
                h = sub.recv(timeout_ms=2000).header
                if h["ts"] >= cleared + 0.1:
                    late.append(h["jawOpen"])
            assert late and max(late) < 0.02, "clear shuts the mouth within 100 ms"
    finally:
        client.call("stream", avatar=avatar, fps=0)


BAD_AUDIO = [
    ({"audio": b"not a wav at all, just bytes"}, "unsupported_audio"),
    ({"audio": b"RIFF\x24\x00\x00\x00WAVEfmt "}, "bad_audio"),  # header cut short
    ({"audio": b""}, "unsupported_audio"),
    ({"audio": b"", "format": "pcm_s16le", "sample_rate": 16000}, "bad_audio"),  # zero length
    ({"audio": b"\x00\x01\x02", "format": "pcm_s16le", "sample_rate": 16000}, "bad_audio"),  # odd byte count
    ({"audio": np.array([np.nan, 0.1], np.float32).tobytes(), "format": "pcm_f32le", "sample_rate": 16000},
     "bad_audio"),
    ({"audio": np.zeros(16000 * 61, np.int16).tobytes(), "format": "pcm_s16le", "sample_rate": 16000},
     "audio_too_long"),
    ({"audio": b"\x00\x00", "format": "pcm_s16le"}, "bad_request"),  # no sample_rate
    ({"audio": b"\x00\x00", "format": "pcm_s16le", "sample_rate": 10}, "bad_request"),  # absurd rate
    ({"audio": b"\x00\x00", "format": "mp3"}, "bad_request"),
    ({"audio": "text, not bytes"}, "bad_request"),
    ({"audio": b"\x00\x00", "format": "pcm_s16le", "sample_rate": 16000, "start": float("nan")}, "bad_request"),
    ({"audio": b"\x00\x00", "format": "pcm_s16le", "sample_rate": 16000, "append": "yes"}, "bad_request"),
]


@pytest.mark.parametrize(("fields", "code"), BAD_AUDIO)
def test_bad_audio_is_a_typed_error_and_the_engine_still_answers(
        client: EngineClient, avatar: str, fields: dict, code: str) -> None:
    with pytest.raises(EngineReplyError) as err:
        client.call("speak", avatar=avatar, **fields)
    assert err.value.code == code
    health_ok(client)


def test_arkit_names_are_accepted_and_the_undrawn_ones_listed(client: EngineClient, avatar: str) -> None:
    reply = client.call("set_controls", avatar=avatar, controls={"jawOpen": 0.3, "eyeLookUpLeft": 0.5,
                                                                  "tongueOut": 0.4, "cheekPuff": 0.2})
    assert sorted(reply["unrendered"]) == ["cheekPuff", "tongueOut"]
    keyed = client.call("set_controls", avatar=avatar, keyframes=[
        {"t": 0.0, "controls": {"tongueOut": 0.1}}, {"t": 0.2, "controls": {"tongueOut": 0.0, "jawOpen": 0.1}}])
    assert keyed["unrendered"] == ["tongueOut"]  # once, not per keyframe
    assert "unrendered" not in client.call("set_controls", avatar=avatar, controls={"jawOpen": 0.0})
    with pytest.raises(EngineReplyError) as err:
        client.call("set_controls", avatar=avatar, controls={"tongueOut": 1.5})
    assert err.value.code == "bad_request"
    client.call("clear", avatar=avatar)


def _decode_mp4(data: bytes) -> tuple[int, float, float]:
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        fps = float(video.average_rate)
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(io.BytesIO(data)) as container:
        audio = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(audio=0))
        seconds = samples / audio.rate
    return frames, fps, seconds


def test_api_speak_returns_an_mp4_as_long_as_the_audio(bridge: BridgeProcess, sentence_wav: bytes,
                                                       tmp_path: Path) -> None:
    image = (DATA / "s1.jpg").read_bytes()
    r = httpx.post(bridge.url + "/api/speak", files={"source_image": ("s1.jpg", image, "image/jpeg"),
                                                     "audio": ("s.wav", sentence_wav, "audio/wav")},
                   data={"expression": "happy", "intensity": "0.5", "fps": "20", "speech_motion": "1.5",
                         "marks": json.dumps([{"t": 0.5, "expression": "surprised", "intensity": 0.6}])},
                   timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    duration = wav_duration(sentence_wav)
    frames, fps, seconds = _decode_mp4(r.content)
    assert fps == pytest.approx(20.0)
    assert frames == round(duration * 20) == int(r.headers["X-Frames"])
    assert seconds == pytest.approx(duration, abs=0.05)


@pytest.mark.parametrize(("audio", "status", "code"), [
    (b"not a wav", 415, "unsupported_audio"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", 400, "bad_audio"),
    (None, 413, "audio_too_long"),
])
def test_api_speak_bad_audio_is_json(bridge: BridgeProcess, audio: bytes | None, status: int, code: str) -> None:
    if audio is None:  # 61 s of silence at 8 kHz: small in bytes, too long in time
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(bytes(2 * 8000 * 61))
        audio = buf.getvalue()
    r = httpx.post(bridge.url + "/api/speak", files={"source_image": ("s1.jpg", (DATA / "s1.jpg").read_bytes()),
                                                     "audio": ("a.wav", audio)}, timeout=60)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert httpx.get(bridge.url + "/health", timeout=5).status_code == 200


def test_api_speak_bad_fields(bridge: BridgeProcess, sentence_wav: bytes) -> None:
    image = (DATA / "s1.jpg").read_bytes()
    no_audio = httpx.post(bridge.url + "/api/speak", files={"source_image": ("s1.jpg", image)}, timeout=30)
    assert no_audio.status_code == 400 and no_audio.json()["error"]["code"] == "bad_request"
    bad_fps = httpx.post(bridge.url + "/api/speak", files={"source_image": ("s1.jpg", image),
                                                           "audio": ("a.wav", sentence_wav)},
                         data={"fps": "500"}, timeout=30)
    assert bad_fps.status_code == 400


def test_a_live_stream_keeps_publishing_while_a_clip_is_rendered(
        engine: EngineProcess, client: EngineClient, avatar: str, sentence_wav: bytes) -> None:
    raw, rate = pcm_s16(sentence_wav)
    result: dict = {}
    client.call("stream", avatar=avatar, fps=25)
    try:
        with client.subscribe(engine.frame_addr, avatar) as sub, \
                EngineClient(engine.command_addr, timeout_ms=120_000, retries=0) as other:
            sub.recv(timeout_ms=5000)
            worker = threading.Thread(target=lambda: result.update(other.call(
                "speak_clip", avatar=avatar, audio=raw * 2, format="pcm_s16le", sample_rate=rate, fps=25)))
            worker.start()
            arrivals = []
            while worker.is_alive():
                if sub.recv(timeout_ms=200) is not None:
                    arrivals.append(time.monotonic())
            worker.join()
        assert result["frames"] == round(2 * wav_duration(sentence_wav) * 25)
        gaps = np.diff(arrivals)
        assert len(arrivals) > 5 and gaps.max() < 1.5, "the clip must not hold the render worker for its whole length"
    finally:
        client.call("stream", avatar=avatar, fps=0)


@pytest.mark.parametrize(("fields", "message"), [
    ({"marks": "not json"}, "JSON list"),
    ({"marks": "{}"}, "JSON list"),
    ({"marks": "[" * 5000 + "]" * 5000}, "JSON list"),
    ({"marks": json.dumps([{"t": 99.0, "expression": "happy"}])}, "past the end"),
    ({"marks": json.dumps([{"t": 0.1, "expression": "angry"}])}, "expression"),
    ({"speech_motion": "3"}, "speech_motion"),
])
def test_api_speak_bad_marks_or_speech_motion_are_400(bridge: BridgeProcess, sentence_wav: bytes, fields: dict,
                                                       message: str) -> None:
    r = httpx.post(bridge.url + "/api/speak", files={"source_image": ("s1.jpg", (DATA / "s1.jpg").read_bytes()),
                                                     "audio": ("a.wav", sentence_wav)}, data=fields, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request" and message in r.json()["error"]["message"], r.text


def test_speak_takes_marks_and_speech_motion(client: EngineClient, avatar: str, sentence_wav: bytes) -> None:
    """The helpers: speak with marks and a gain, set_speech_motion; bad marks and gains are bad_request."""
    reply = client.speak(avatar, sentence_wav, speech_motion=0.5,
                         marks=[{"t": 0.4, "expression": "happy", "intensity": 0.8, "transition_ms": 150},
                                {"t": 1.0, "expression": "neutral", "controls": {"browInnerUp": 0.3}}])
    assert reply.duration == pytest.approx(wav_duration(sentence_wav), abs=0.01) and reply.end > reply.start
    assert client.set_speech_motion(avatar, 0.0).raw["speech_motion"] == 0.0
    duration = wav_duration(sentence_wav)
    bad = [[{"t": duration + 0.5, "expression": "happy"}], [{"t": -0.1, "expression": "happy"}],
           [{"t": 0.1, "expression": "angry"}], [{"t": 0.1, "expression": "happy", "controls": {"nope": 1.0}}],
           [{"t": 0.1}], "happy"]
    for marks in bad:
        with pytest.raises(EngineReplyError) as err:
            client.speak(avatar, sentence_wav, marks=marks)
        assert err.value.code == "bad_request", marks
    for gain in (2.5, -1.0, float("nan")):
        with pytest.raises(EngineReplyError) as err:
            client.set_speech_motion(avatar, gain)
        assert err.value.code == "bad_request"
        with pytest.raises(EngineReplyError):
            client.speak(avatar, sentence_wav, speech_motion=gain)
    client.set_speech_motion(avatar, 1.0)
    client.clear(avatar)
    health_ok(client)
