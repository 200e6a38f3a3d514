"""The speech audio as it is heard, on the PUB socket: ``[audio.<avatar>, header, pcm]`` next to the frames.

Why: the mouth is placed on the engine clock (engine/animation/speech.py); any subscriber that plays the voice must
place it on the same clock, or voice and face drift apart. So each ``speak``/``append`` publishes the decoded PCM of
that request once, stamped with the engine time at which its first sample is heard (``ts``, the clock of the
frames' ``ts``), and ``clear`` (and a ``speak`` that replaces a running utterance) publishes the cut: a subscriber
drops whatever it holds from ``ts`` on. The bridge's WHEP tracks (bridge/whep.py) are such a subscriber.

One message per request, not per 20 ms: PUB drops for a subscriber with more than ``FRAME_HWM`` (4) messages in its
pipe, so a burst of small chunks would lose audio; a request's audio is at most 60 s (5.8 MB at 48 kHz s16). The
message is built on the caller's thread (prep or command) and only sent on the publish thread, the one user of the
PUB socket; its queue has ``AUDIO_DEPTH`` places for this beyond the frames' own.

Header (msgpack map): ``{"kind": "pcm" | "cut", "avatar", "seq", "ts", "sample_rate", "channels": 1,
"format": "s16le", "samples", "wall"}``; a cut has ``samples`` 0 and an empty payload.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import msgpack
import numpy as np
import zmq

from engine.constants import AUDIO_TOPIC
from engine.errors import Busy
from engine.speech.audio import Pcm
from engine.workers import Worker

log = logging.getLogger(__name__)

AUDIO_DEPTH = 8  # audio messages waiting for the publish thread at most, beyond the frames' STREAM_ENCODE_DEPTH


def to_s16(pcm: Pcm) -> bytes:
    """Float -1..1 mono -> little-endian int16 bytes (clipped)."""
    return (np.clip(pcm.samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


class AudioOut:
    """Builds audio messages on any thread and sends them on the publish thread (``send`` is only called there)."""

    def __init__(self, publisher: Worker, socket: Callable[[], zmq.Socket | None]) -> None:
        self._publisher = publisher
        self._socket = socket
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()
        self.published = 0
        self.dropped = 0  # refused by a full publish queue (logged): never expected at AUDIO_DEPTH

    def speech(self, avatar: str, pcm: Pcm, start: float, cut: float | None = None) -> None:
        """Publish ``pcm`` as heard from engine time ``start``; ``cut`` first ends what was playing (a new
        utterance replacing a running one). One publish job, so the cut always arrives before the audio."""
        messages = [] if cut is None else [self._message("cut", avatar, cut, 0, 0, b"")]
        messages.append(self._message("pcm", avatar, start, pcm.sample_rate, len(pcm.samples), to_s16(pcm)))
        self._submit(messages)

    def cut(self, avatar: str, t: float) -> None:
        """Barge-in: nothing of this avatar's audio is heard from engine time ``t`` on."""
        self._submit([self._message("cut", avatar, t, 0, 0, b"")])

    def _message(self, kind: str, avatar: str, ts: float, rate: int, samples: int, payload: bytes) -> list[bytes]:
        with self._lock:
            seq = self._seq.get(avatar, 0)
            self._seq[avatar] = seq + 1
        header = {"kind": kind, "avatar": avatar, "seq": seq, "ts": ts, "sample_rate": rate, "channels": 1,
                  "format": "s16le", "samples": samples, "wall": time.time()}
        return [AUDIO_TOPIC + avatar.encode(), msgpack.packb(header), payload]

    def _submit(self, messages: list[list[bytes]]) -> None:
        try:
            self._publisher.submit(lambda: self._send(messages))
        except Busy as exc:  # shutting down, or a stalled publish thread: the voice is lost, never the request
            self.dropped += len(messages)
            log.warning("audio not published: %s", exc)

    def _send(self, messages: list[list[bytes]]) -> None:
        """Publish thread: PUB never blocks (a subscriber with a full pipe loses the message, as with frames)."""
        sock = self._socket()
        if sock is None:
            return
        for message in messages:
            try:
                sock.send_multipart(message, zmq.NOBLOCK)
                self.published += 1
            except zmq.Again:
                self.dropped += 1
