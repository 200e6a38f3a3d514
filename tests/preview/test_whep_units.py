"""WHEP's parts without a browser or an engine: the audio buffer (seq gaps counted, cuts, contiguous blocks), the
delay adaptation, a video track under a long delay (every frame kept), the ICE option parsing, the session tag and
the WebRTC stack patches undone with the feature."""

from __future__ import annotations

import asyncio
import hashlib
import time

import aioice.ice
import numpy as np
import pytest
import zmq.asyncio
from aiortc.codecs import vpx

from bridge.media import AUDIO_RATE, BLOCK, AudioBuffer, AvatarFeed, FeedFrame, FeedVideoTrack
from bridge.whep import WhepSettings, cors_origins, ice_addresses, ice_servers, session_tag, stack_patches
from engine.client import AudioMessage


def pcm(seconds: float, rate: int = AUDIO_RATE, value: int = 8000) -> bytes:
    return np.full(int(seconds * rate), value, "<i2").tobytes()


def msg(seq: int, ts: float, kind: str = "pcm", data: bytes = b"", rate: int = AUDIO_RATE) -> AudioMessage:
    return AudioMessage(kind, "a", seq, ts, rate if kind == "pcm" else 0, data)


def test_audio_buffer_counts_seq_gaps_as_lost() -> None:
    buf = AudioBuffer()
    buf.add(msg(0, 10.0, data=pcm(0.1)))
    buf.add(msg(1, 10.1, data=pcm(0.1)))
    assert buf.lost == 0
    buf.add(msg(5, 10.5, data=pcm(0.1)))  # 2, 3 and 4 never came
    assert (buf.received, buf.lost) == (3, 3)


def test_audio_buffer_blocks_join_and_silence_fills_the_rest() -> None:
    buf = AudioBuffer()
    buf.add(msg(0, 1.0, data=pcm(0.05)))  # 50 ms from engine time 1.0
    blocks = np.concatenate([buf.read(0.98, k) for k in range(5)])  # 100 ms from 0.98
    heard = np.flatnonzero(blocks)
    assert heard[0] == round(0.02 * AUDIO_RATE) and len(heard) == round(0.05 * AUDIO_RATE)
    assert len(blocks) == 5 * BLOCK


def test_audio_buffer_resamples_and_a_cut_ends_the_voice_with_a_fade() -> None:
    buf = AudioBuffer()
    buf.add(msg(0, 0.0, data=pcm(1.0, 22050), rate=22050))
    assert len(buf.items[0].samples) == pytest.approx(AUDIO_RATE, abs=2)
    buf.add(msg(1, 2.0, data=pcm(0.5)))  # a later utterance: dropped by the cut
    buf.add(msg(2, 0.5, kind="cut"))
    assert len(buf.items) == 1
    x = buf.items[0].samples
    assert len(x) == AUDIO_RATE // 2 and x[-1] == 0.0 and x[-241] > 0.2  # faded over the last 5 ms only


def chunks_of(x: np.ndarray, rate: int, ts: float, seq0: int, step: int) -> list[AudioMessage]:
    """A request as the engine sends it: contiguous chunks, ``last`` on the final one."""
    return [AudioMessage("pcm", "a", seq0 + i, ts + k / rate, rate, x[k:k + step].astype("<i2").tobytes(),
                         k + step >= len(x)) for i, k in enumerate(range(0, len(x), step))]


def test_a_requests_chunks_are_resampled_as_one_stream_and_a_lost_one_leaves_a_gap() -> None:
    rate = 22050
    x = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 16000).astype("<i2")
    whole, parts = AudioBuffer(), AudioBuffer()
    whole.add(msg(0, 5.0, data=x.tobytes(), rate=rate))
    chunks = chunks_of(x, rate, 5.0, 0, rate // 5)
    for c in chunks:
        parts.add(c)
    one = np.concatenate([whole.read(5.0, k) for k in range(50)])
    joined = np.concatenate([parts.read(5.0, k) for k in range(50)])
    assert np.abs(one - joined).max() < 1e-4  # no seam at the 0.2 s boundaries
    lossy = AudioBuffer()
    for c in chunks[:2] + chunks[3:]:  # the third chunk (0.4-0.6 s) was dropped
        lossy.add(c)
    got = np.concatenate([lossy.read(5.0, k) for k in range(50)])
    assert lossy.lost == 1
    assert np.abs(got[int(0.42 * AUDIO_RATE):int(0.58 * AUDIO_RATE)]).max() == 0.0  # silence where it was
    assert np.abs(got[int(0.65 * AUDIO_RATE):] - one[int(0.65 * AUDIO_RATE):]).max() < 0.05  # the rest in place


def feed(delay_s: float) -> AvatarFeed:
    async def offset() -> float:
        return 0.0

    ctx = zmq.asyncio.Context()
    f = AvatarFeed("a", ctx, "tcp://127.0.0.1:9", None, offset, delay_s)  # never started: no socket I/O
    f._sock.close(0)
    ctx.term()
    return f


def test_delay_grows_at_once_with_late_frames_and_shrinks_slowly_to_the_floor() -> None:
    f = feed(0.1)
    f.stats.late_ms = [50.0] * 100
    f._adapt_delay()
    assert f.delay_s == 0.1  # p95 50 ms + 20 ms margin is under the floor
    f.stats.late_ms = [300.0] * 100
    f._adapt_delay()
    assert f.delay_s == pytest.approx(0.32)  # grows at once to p95 + margin
    f.stats.late_ms = [10.0] * 100
    f._adapt_delay()
    assert f.delay_s == pytest.approx(0.31)  # shrinks by 10 ms a step
    for _ in range(100):
        f._adapt_delay()
    assert f.delay_s == pytest.approx(0.1)
    f.stats.late_ms = [5000.0] * 100
    f._adapt_delay()
    assert f.delay_s == 1.0  # capped


def test_a_long_delay_keeps_every_frame() -> None:
    """At 400 ms delay ten 25 fps frames wait at once: none may be dropped (8 places once lost half of them)."""
    async def run() -> tuple[int, int]:
        f = feed(0.4)
        track = FeedVideoTrack(f)
        start = time.monotonic()

        async def produce() -> None:
            for k in range(40):
                f.offset = 0.0
                track.offer(FeedFrame(start + k * 0.04, None, time.monotonic()))  # type: ignore[arg-type]
                await asyncio.sleep(max(0.0, start + (k + 1) * 0.04 - time.monotonic()))

        producer = asyncio.create_task(produce())
        sent = 0
        while sent + track.skipped < 40:
            await track.recv()
            sent += 1
        await producer
        track.stop()
        return sent, track.skipped

    sent, skipped = asyncio.run(run())
    assert (sent, skipped) == (40, 0)


def test_a_stalled_viewer_skips_to_the_newest_due_frame() -> None:
    f = feed(0.0)
    track = FeedVideoTrack(f)
    now = time.monotonic()
    for k in range(30):  # all due already: only the newest is kept
        track.offer(FeedFrame(now - 1 + k * 0.01, None, now))  # type: ignore[arg-type]
    assert len(track._waiting) == 1 and track.skipped == 29
    track.stop()


def test_ice_servers_parse_stun_and_turn_with_credentials() -> None:
    servers = ice_servers(WhepSettings(whep_ice_servers=" stun:s.example:3478, turn:u:p:w@t.example:3478,"
                                                        "turns:bob:pw@t.example:5349?transport=tcp"))
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        ("stun:s.example:3478", None, None), ("turn:t.example:3478", "u", "p:w"),
        ("turns:t.example:5349?transport=tcp", "bob", "pw")]
    assert ice_servers(WhepSettings()) == []


def test_ice_addresses_and_cors_origins() -> None:
    assert ice_addresses(WhepSettings(), "127.0.0.1") == ["127.0.0.1"]
    assert ice_addresses(WhepSettings(), "0.0.0.0") == []  # every interface
    assert ice_addresses(WhepSettings(), "localhost") == []
    assert ice_addresses(WhepSettings(whep_ice_addresses="10.0.0.2, ::1"), "127.0.0.1") == ["10.0.0.2", "::1"]
    assert cors_origins(WhepSettings()) == []
    assert cors_origins(WhepSettings(whep_cors_origins="https://a.example, http://b:8080")) == [
        "https://a.example", "http://b:8080"]


def test_session_tag_is_a_short_hash_of_the_id() -> None:
    assert session_tag("abc") == hashlib.sha256(b"abc").hexdigest()[:8] != "abc"


def test_stack_patches_are_undone() -> None:
    before = (aioice.ice.get_host_addresses, aioice.ice.CONSENT_INTERVAL, vpx.MAX_BITRATE, vpx.DEFAULT_BITRATE)
    with stack_patches(WhepSettings(whep_consent_timeout_s=6.0, whep_bitrate_kbps=800), ["127.0.0.1"]):
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, True) == []
        assert abs(aioice.ice.CONSENT_INTERVAL - 1.0) < 1e-9
        assert vpx.MAX_BITRATE == 800_000 and vpx.DEFAULT_BITRATE == 500_000
    assert (aioice.ice.get_host_addresses, aioice.ice.CONSENT_INTERVAL, vpx.MAX_BITRATE,
            vpx.DEFAULT_BITRATE) == before


def test_cors_grants_only_the_listed_origins() -> None:
    """Starlette's CORSMiddleware on /whep*: a listed origin gets its preflight grant and the exposed headers,
    another origin none; other paths are not touched."""
    from starlette.testclient import TestClient

    from bridge.app import create_app
    from bridge.config import BridgeSettings
    from bridge.whep import WHEP

    app = create_app(BridgeSettings(), features=[WHEP],
                     feature_settings={"whep": WhepSettings(whep_cors_origins="https://a.example")})
    client = TestClient(app)
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    granted = client.options("/whep", headers={"Origin": "https://a.example", **ask})
    assert granted.status_code == 200 and granted.headers["access-control-allow-origin"] == "https://a.example"
    refused = client.options("/whep", headers={"Origin": "https://b.example", **ask})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    plain = client.options("/whep/session/x", headers={"Origin": "https://a.example"})
    assert plain.headers["access-control-expose-headers"] == "Location, ETag, X-Playout-Delay-Ms"
    assert "access-control-allow-origin" not in client.get("/expressions", headers={"Origin": "https://a.example"}).headers
    patch = client.patch("/whep/session/x")  # no trickle ICE: the bridge's JSON 405, naming what is allowed
    assert patch.status_code == 405 and patch.headers["allow"] == "DELETE"
    assert patch.json()["error"]["code"] == "method_not_allowed"
