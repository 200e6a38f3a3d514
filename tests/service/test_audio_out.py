"""The speech audio on the PUB socket: a real engine, a real SUB socket on ``audio.<avatar>``, real espeak-ng speech.

What a subscriber needs to play the voice in sync with the frames: the PCM of each ``speak``/``append`` as sent, in
chunks stamped with the engine time their first sample is heard (the reply's ``start``, the frames' clock), and the
cut of a ``clear`` or of a replacing ``speak``. A subscriber that falls behind the frames loses only the chunks
released meanwhile, counts them (gaps in ``seq``), and hears the rest and the next utterance.
"""

from __future__ import annotations

import asyncio
import time

import msgpack
import numpy as np
import pytest
import zmq
import zmq.asyncio

from bridge.media import AUDIO_RATE, AudioBuffer, AvatarFeed
from engine.audio_out import CHUNK_S, LEAD_S
from engine.client import AudioMessage, EngineClient
from engine.client import parse_audio as parse
from engine.constants import AUDIO_TOPIC
from tests.service.conftest import EngineProcess
from tests.service.test_speak import pcm_s16, sentence_wav  # noqa: F401 (the fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def client(engine: EngineProcess) -> EngineClient:
    with EngineClient(engine.command_addr, timeout_ms=20_000, retries=0) as c:
        yield c


@pytest.fixture()
def sub(engine: EngineProcess, client: EngineClient) -> zmq.Socket:
    """A SUB on the default avatar's audio and frames (the slow joiner waited out with a probe cut)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    avatar = client.call("list_avatars")["default"]
    sock.subscribe(AUDIO_TOPIC + avatar.encode())
    sock.connect(engine.frame_addr)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # clear publishes a cut: once one arrives, the subscription is live
        client.call("clear", avatar=avatar)
        if sock.poll(200):
            drain(sock)
            break
    else:
        pytest.fail("no audio message reached the subscriber")
    yield sock
    sock.close(0)


def drain(sock: zmq.Socket, wait_ms: int = 0) -> list[list[bytes]]:
    out = []
    while sock.poll(wait_ms):
        out.append(sock.recv_multipart())
        wait_ms = 0
    return out


def utterance(sock: zmq.Socket, timeout: float = 15.0) -> list[AudioMessage]:
    """Audio messages up to and including the last chunk of a request."""
    got: list[AudioMessage] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (got and got[-1].kind == "pcm" and got[-1].last):
        if sock.poll(200):
            msg = sock.recv_multipart()
            if msg[0].startswith(AUDIO_TOPIC):
                got.append(parse(msg))
    assert got and got[-1].last, got
    return got


def collect(sock: zmq.Socket, seconds: float) -> list[AudioMessage]:
    """Every audio message for ``seconds`` (the chunks come paced, not at once)."""
    got, until = [], time.monotonic() + seconds
    while time.monotonic() < until:
        if sock.poll(50):
            msg = sock.recv_multipart()
            if msg[0].startswith(AUDIO_TOPIC):
                got.append(parse(msg))
    return got


def joined(chunks: list[AudioMessage]) -> np.ndarray:
    return np.concatenate([np.frombuffer(c.pcm, "<i2") for c in chunks if c.kind == "pcm"])


def recv(sock: zmq.Socket, n: int) -> list:
    got = []
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        if sock.poll(500):
            got.append(parse(sock.recv_multipart()))
    assert len(got) == n, got
    return got


def test_speak_publishes_its_pcm_at_the_engine_time_it_is_heard(sub, client, sentence_wav) -> None:  # noqa: F811
    avatar = client.call("list_avatars")["default"]
    reply = client.call("speak", avatar=avatar, audio=sentence_wav)
    cut, *chunks = utterance(sub)
    assert cut.kind == "cut" and cut.ts <= reply["start"] + 1e-6  # a fresh utterance ends what was playing
    assert all(c.kind == "pcm" and c.avatar == avatar for c in chunks)
    assert [c.seq for c in chunks] == list(range(cut.seq + 1, cut.seq + 1 + len(chunks)))
    assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[0].ts == pytest.approx(reply["start"], abs=1e-9)
    for a, b in zip(chunks, chunks[1:], strict=False):  # contiguous: each starts where the one before ends
        assert b.ts == pytest.approx(a.ts + a.duration, abs=1e-9)
        assert a.duration == pytest.approx(CHUNK_S, abs=1e-3)
    raw, rate = pcm_s16(sentence_wav)
    assert {c.sample_rate for c in chunks} == {rate}
    sent = np.frombuffer(raw, "<i2").astype(np.int32)
    samples = joined(chunks)
    assert len(samples) == len(sent)
    assert np.abs(samples.astype(np.int32) - sent).max() <= 1  # the samples as sent (s16 -> float -> s16)
    assert sum(c.duration for c in chunks) == pytest.approx(reply["duration"], abs=1e-6)


def test_append_continues_at_the_end_and_clear_publishes_the_cut(sub, client, sentence_wav) -> None:  # noqa: F811
    avatar = client.call("list_avatars")["default"]
    first = client.call("speak", avatar=avatar, audio=sentence_wav)
    second = client.call("speak", avatar=avatar, audio=sentence_wav, append=True)
    cut, *a = utterance(sub)
    b = utterance(sub)
    assert cut.kind == "cut" and {c.kind for c in a + b} == {"pcm"}
    assert a[0].ts == pytest.approx(first["start"]) and b[0].ts == pytest.approx(second["start"])
    assert b[0].ts == pytest.approx(a[-1].ts + a[-1].duration, abs=1e-6)  # seamless: heard right after the first
    third = client.call("speak", avatar=avatar, audio=sentence_wav, append=True)
    time.sleep(0.3)
    cleared = client.call("clear", avatar=avatar)  # while the third is playing: its later chunks are never sent
    got = collect(sub, 1.5)
    end = next(m for m in got if m.kind == "cut")
    assert end.ts == pytest.approx(cleared["now"])
    late = [m for m in got if m.kind == "pcm" and m.seq > end.seq]
    assert all(m.ts < end.ts for m in late), late  # released before the cut's time: shortened to it
    heard = [m for m in got if m.kind == "pcm"]
    assert heard and heard[0].ts == pytest.approx(third["start"])
    assert max(m.ts for m in heard) <= cleared["now"] + LEAD_S + CHUNK_S  # nothing beyond the lead was released


def test_audio_ts_and_frame_ts_share_the_engine_clock(engine: EngineProcess, sub, client,
                                                      sentence_wav) -> None:  # noqa: F811
    avatar = client.call("list_avatars")["default"]
    sub.subscribe(b"frame." + avatar.encode())
    client.call("stream", avatar=avatar, fps=10)
    try:
        frame_ts = None
        deadline = time.monotonic() + 20
        while frame_ts is None and time.monotonic() < deadline:
            if sub.poll(500):
                msg = sub.recv_multipart()
                if msg[0].startswith(b"frame."):
                    frame_ts = msgpack.unpackb(msg[1])["ts"]
        reply = client.call("speak", avatar=avatar, audio=sentence_wav)
        pcm = None
        deadline = time.monotonic() + 10
        while pcm is None and time.monotonic() < deadline:  # frames arrive in between
            if sub.poll(500):
                msg = sub.recv_multipart()
                if msg[0].startswith(AUDIO_TOPIC) and parse(msg).kind == "pcm":
                    pcm = parse(msg)
        assert pcm is not None
        assert frame_ts is not None
        assert 0 <= pcm.ts - frame_ts < 5.0  # the same clock: the speech starts just after a frame seen just before
        assert pcm.ts == pytest.approx(reply["start"])
    finally:
        client.call("stream", avatar=avatar, fps=0)


STALL_S = 4.0  # 25 fps of ~70 KB frames fill the pipe and the kernel's buffers (~4 MB) after 2-3 s


def test_a_slow_subscriber_loses_only_what_came_while_it_stalled_and_counts_it(engine: EngineProcess, client,
                                                                              sentence_wav) -> None:  # noqa: F811
    """A subscriber with a small pipe stalls for STALL_S while 25 fps frames stream and a long utterance (a speak and
    an append) plays: the chunks released meanwhile are lost, the gaps in seq count exactly them (bridge/media.py's
    AudioBuffer), the rest of the utterance arrives, and so does every chunk of the next one."""
    avatar = client.call("list_avatars")["default"]
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 4)
    sock.setsockopt(zmq.RCVBUF, 4096)
    sock.subscribe(AUDIO_TOPIC + avatar.encode())
    sock.subscribe(b"frame." + avatar.encode())
    sock.connect(engine.frame_addr)
    buf, chunks = AudioBuffer(), []

    def read(until: float) -> None:
        while time.monotonic() < until:
            if sock.poll(100):
                msg = sock.recv_multipart()
                if msg[0].startswith(AUDIO_TOPIC):
                    chunks.append(parse(msg))
                    buf.add(chunks[-1])

    client.call("stream", avatar=avatar, fps=25)
    try:
        deadline = time.monotonic() + 10
        while not any(m[0].startswith(AUDIO_TOPIC) for m in drain(sock, 200)):  # the subscription is live
            client.call("clear", avatar=avatar)
            assert time.monotonic() < deadline
        client.call("speak", avatar=avatar, audio=sentence_wav)
        rest = client.call("speak", avatar=avatar, audio=sentence_wav, append=True)
        time.sleep(STALL_S)  # nothing read
        read(time.monotonic() + rest["end"] - client.call("health")["now"] + 1.0)
        following = client.call("speak", avatar=avatar, audio=sentence_wav)
        read(time.monotonic() + following["duration"] + 1.0)
    finally:
        client.call("stream", avatar=avatar, fps=0)
        sock.close(0)
    seqs = [c.seq for c in chunks]
    missing = set(range(seqs[0], seqs[-1] + 1)) - set(seqs)
    print(f"received {len(seqs)} audio messages, lost {sorted(missing)}")
    assert buf.lost == len(missing) > 0  # the stall lost chunks, and the count says exactly how many
    appended = [c for c in chunks if c.kind == "pcm" and rest["start"] - 1e-6 <= c.ts < following["start"] - 1e-6]
    assert appended and appended[-1].last  # the utterance's end, released after the stall, was heard
    last = [c for c in chunks if c.kind == "pcm" and c.ts >= following["start"] - 1e-6]
    raw, _ = pcm_s16(sentence_wav)
    assert len(joined(last)) == len(raw) // 2 and last[-1].last  # the next utterance, whole


def test_a_whep_feed_stalled_for_2_s_plays_the_next_utterance(engine: EngineProcess, client,
                                                             sentence_wav) -> None:  # noqa: F811
    """bridge/media.py's feed (the WHEP viewers' source) with its event loop blocked for 2 s while frames stream and
    an utterance is spoken: what it lost is what its counter says (its pipe holds 256 messages: nothing), and the
    next utterance is in its buffer from start to end."""
    avatar = client.call("list_avatars")["default"]
    loaded: dict[str, object] = {}

    async def run() -> None:
        async def offset() -> float:
            return 0.0  # the engine and this test share CLOCK_MONOTONIC

        ctx = zmq.asyncio.Context()
        feed = AvatarFeed(avatar, ctx, engine.frame_addr, None, offset, 0.1)
        feed.start()
        try:
            deadline = time.monotonic() + 10
            while feed.audio.received == 0:  # the subscription is live once a cut arrives
                client.call("clear", avatar=avatar)
                await asyncio.sleep(0.2)
                assert time.monotonic() < deadline
            await asyncio.to_thread(client.call, "stream", avatar=avatar, fps=25)
            await asyncio.sleep(0.5)
            first = client.call("speak", avatar=avatar, audio=sentence_wav)
            time.sleep(2.0)  # the feed's loop is blocked: nothing is read
            second = await asyncio.to_thread(client.call, "speak", avatar=avatar, audio=sentence_wav)
            await asyncio.sleep(0.3)  # the cut has arrived: the first utterance's chunks from its time on are gone
            seen: dict[float, int] = {}  # what the buffer held, while it played (it keeps the last 2 s only)
            until = time.monotonic() + second["duration"] + 1.0
            while time.monotonic() < until:
                seen.update({s.ts: len(s.samples) for s in feed.audio.items})
                await asyncio.sleep(0.2)
            loaded.update(first=first, second=second, lost=feed.audio.lost, received=feed.audio.received,
                          seen=seen, frames=feed.stats.frames)
        finally:
            await asyncio.to_thread(client.call, "stream", avatar=avatar, fps=0)
            await feed.close()
            ctx.term()

    asyncio.run(run())
    second = loaded["second"]
    assert loaded["lost"] == 0 and loaded["frames"] > 25, loaded  # counted: nothing lost
    voice = {ts: n for ts, n in loaded["seen"].items() if ts >= second["start"] - 1e-6}  # type: ignore[union-attr]
    assert sum(voice.values()) / AUDIO_RATE == pytest.approx(second["duration"], abs=0.01)  # the next one, whole
    assert min(voice) == pytest.approx(second["start"], abs=1e-6)
