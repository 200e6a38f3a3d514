"""The speech audio as it is heard, on the PUB socket: ``[audio.<avatar>, header, pcm]`` next to the frames.

Why: the mouth is placed on the engine clock (engine/animation/speech.py); any subscriber that plays the voice must
place it on the same clock, or voice and face drift apart. So each ``speak``/``append`` publishes the decoded PCM of
that request, stamped with the engine time at which its first sample is heard (``ts``, the clock of the frames'
``ts``), and ``clear`` (and a ``speak`` that replaces a running utterance) publishes the cut: a subscriber drops
whatever it holds from ``ts`` on.

Delivery: the PUB socket drops for a subscriber whose pipe holds ``FRAME_HWM`` (4) messages, and frames fill it. So
the audio goes in chunks of ``CHUNK_S`` (each with the avatar's next ``seq``), each released ``LEAD_S`` before it is
heard and at least ``PACE_S`` after the one before (a burst of more than 4 messages loses the rest even for a fast
subscriber; measured: 4 of 30 arrive back to back, 30 of 30 a millisecond apart). A subscriber that falls behind
loses only the chunks released while it was behind, not the utterance, and sees each lost one as a gap in ``seq``
(PUB itself never says; bridge/media.py counts them). The pacing thread (``audio``) hands each chunk to the publish
thread, the one user of the PUB socket, on its side lane (after the frames waiting there, never counted against
their room). A cut drops the chunks not yet released from its time on.

Header (msgpack map): ``{"kind": "pcm" | "cut", "avatar", "seq", "ts", "sample_rate", "channels": 1,
"format": "s16le", "samples", "last", "wall"}``; ``last`` marks the final chunk of a request; a cut has ``samples``
0 and an empty payload.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgpack
import numpy as np
import zmq

from engine.constants import AUDIO_TOPIC
from engine.errors import Busy
from engine.speech.audio import Pcm
from engine.workers import Worker

log = logging.getLogger(__name__)

AUDIO_DEPTH = 8  # audio messages waiting for the publish thread at most (its side lane: frames go first)
SUBMIT_WAIT_S = 1.0  # the audio thread waits this long at most for room on the publish thread
CHUNK_S = 0.2  # audio per message
LEAD_S = 0.5  # a chunk is released this long before it is heard (a player needs it before then)
PACE_S = 0.005  # between two audio messages at least: the PUB socket sees its pipes drain between them
MAX_WAIT_S = 1.0


def to_s16(pcm: Pcm) -> bytes:
    """Float -1..1 mono -> little-endian int16 bytes (clipped)."""
    return _s16(pcm.samples).tobytes()


def _s16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")


@dataclass
class Chunk:
    """Audio (or a cut, ``samples`` None) waiting for its release time."""

    avatar: str
    ts: float
    rate: int = 0
    samples: np.ndarray | None = None  # int16
    last: bool = True

    @property
    def end(self) -> float:
        return self.ts + (len(self.samples) / self.rate if self.samples is not None else 0.0)


class AudioOut:
    """Chunks the speech on any thread, releases it on its own (``audio``) thread, sends it on the publish thread."""

    def __init__(self, publisher: Worker, socket: Callable[[], zmq.Socket | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._publisher = publisher
        self._socket = socket
        self._clock = clock
        self._seq: dict[str, int] = {}
        self._queue: list[tuple[float, int, Chunk]] = []  # (release time, order, chunk): a heap
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)
        self.published = 0
        self.dropped = 0  # refused by a full publish queue (logged): never expected at AUDIO_DEPTH

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5.0)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def speech(self, avatar: str, pcm: Pcm, start: float, cut: float | None = None) -> None:
        """Publish ``pcm`` as heard from engine time ``start``; ``cut`` first ends what was playing (a new
        utterance replacing a running one): the cut is released at once, before any of the new chunks."""
        samples, rate = _s16(pcm.samples), pcm.sample_rate
        step = max(1, round(CHUNK_S * rate))
        with self._cond:
            if cut is not None:
                self._cut(avatar, cut)
            for k in range(0, len(samples), step):
                chunk = Chunk(avatar, start + k / rate, rate, samples[k:k + step], last=k + step >= len(samples))
                self._push(chunk.ts - LEAD_S, chunk)
            self._cond.notify_all()

    def cut(self, avatar: str, t: float) -> None:
        """Barge-in: nothing of this avatar's audio is heard from engine time ``t`` on."""
        with self._cond:
            self._cut(avatar, t)
            self._cond.notify_all()

    def pending(self, avatar: str | None = None) -> int:
        with self._cond:
            return sum(1 for _, _, c in self._queue if avatar is None or c.avatar == avatar)

    # -- under the condition's lock --

    def _push(self, release: float, chunk: Chunk) -> None:
        heapq.heappush(self._queue, (release, next(self._order), chunk))

    def _cut(self, avatar: str, t: float) -> None:
        """Unreleased chunks from ``t`` on dropped (one that spans ``t`` shortened), and the cut queued now."""
        kept = []
        for release, order, chunk in self._queue:
            if chunk.avatar == avatar and chunk.samples is not None and chunk.end > t:
                if chunk.ts >= t:
                    continue
                n = max(0, int((t - chunk.ts) * chunk.rate))
                chunk = Chunk(avatar, chunk.ts, chunk.rate, chunk.samples[:n], last=True)
            kept.append((release, order, chunk))
        heapq.heapify(kept)
        self._queue = kept
        self._push(float("-inf"), Chunk(avatar, t))

    # -- the audio thread --

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (self._queue and self._queue[0][0] <= self._clock()):
                    wait = self._queue[0][0] - self._clock() if self._queue else MAX_WAIT_S
                    self._cond.wait(min(MAX_WAIT_S, max(wait, 0.001)))
                if self._stopping:
                    return
                chunk = heapq.heappop(self._queue)[2]
                message = self._message(chunk)
            self._submit(message)
            time.sleep(PACE_S)

    def _message(self, chunk: Chunk) -> list[bytes]:
        seq = self._seq.get(chunk.avatar, 0)
        self._seq[chunk.avatar] = seq + 1
        pcm = chunk.samples.tobytes() if chunk.samples is not None else b""
        header = {"kind": "pcm" if chunk.samples is not None else "cut", "avatar": chunk.avatar, "seq": seq,
                  "ts": chunk.ts, "sample_rate": chunk.rate, "channels": 1, "format": "s16le",
                  "samples": len(pcm) // 2, "last": chunk.last, "wall": time.time()}
        return [AUDIO_TOPIC + chunk.avatar.encode(), msgpack.packb(header), pcm]

    def _submit(self, message: list[bytes]) -> None:
        """To the publish thread's side lane: taken when no frame waits, so a chunk never takes a frame's room (the
        clock skips a tick when the publisher holds STREAM_ENCODE_DEPTH jobs); the lead covers the wait."""
        try:
            self._publisher.submit_side(lambda: self._send(message), SUBMIT_WAIT_S)
        except Busy as exc:  # shutting down, or a stalled publish thread: the voice is lost, never the request
            self.dropped += 1
            log.warning("audio not published: %s", exc)

    def _send(self, message: list[bytes]) -> None:
        """Publish thread: PUB never blocks; a subscriber whose pipe is full loses the chunk (it sees the seq gap)."""
        sock = self._socket()
        if sock is None:
            return
        sock.send_multipart(message, zmq.NOBLOCK)
        self.published += 1
