"""The speech half of LivePortraitVideoService: TTS audio to the engine as ``speak``, in order, and the markers
(TTSStarted/Stopped, emotions) that wait their turn among it. A mixin of the service: it uses the service's state
(service.py's ``__init__`` makes it) and only these methods touch the speech queue's far end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pipecat.frames.frames import TTSAudioRawFrame, TTSStartedFrame

from engine.client import EngineClientError
from engine.integrations.pipecat.emotion import AvatarEmotionFrame
from engine.integrations.pipecat.timeline import Segment

MAX_SPEAK_S = 1.0  # TTS chunks waiting together are sent as one speak of at most this long


@dataclass
class _Speech:
    pcm: np.ndarray
    rate: int
    entered: float
    gen: int


@dataclass
class _Marker:
    """A frame or an emotion that waits in the speech queue for the speech sent before it."""

    item: Any
    gen: int


class SpeechOut:
    """Sends the queued speech (``_speech_q``) to the engine and files it, by the engine times of the replies, in
    the held speech (``_held``) that the face releases."""

    async def _speech_loop(self) -> None:
        while True:
            item = await self._speech_q.get()
            if item.gen != self._gen:
                continue
            if not self._live:  # queued before the engine went away: out as it is
                if isinstance(item, _Speech):
                    await self.push_frame(TTSAudioRawFrame(audio=item.pcm.astype("<i2").tobytes(),
                                                           sample_rate=item.rate, num_channels=1))
                elif not isinstance(item.item, AvatarEmotionFrame):
                    await self.push_frame(item.item)
                continue
            if isinstance(item, _Marker):
                await self._marker(item.item)
                continue
            # coalesce the chunks already waiting (same rate, same generation): fewer, larger speaks
            chunks = [item.pcm]
            while not self._speech_q.empty() and sum(len(c) for c in chunks) < MAX_SPEAK_S * item.rate:
                nxt = self._speech_q._queue[0]  # type: ignore[attr-defined]  # peek: a marker ends the batch
                if not isinstance(nxt, _Speech) or nxt.rate != item.rate or nxt.gen != item.gen:
                    break
                chunks.append(self._speech_q.get_nowait().pcm)  # type: ignore[union-attr]
            await self._speak(np.concatenate(chunks), item.rate, item.entered, item.gen)

    async def _marker(self, item: Any) -> None:
        if isinstance(item, AvatarEmotionFrame):
            self._marks = [{"t": 0.0, "expression": item.expression, "intensity": float(item.intensity)}]
        elif isinstance(item, TTSStartedFrame):
            self._utterance_open = False  # a new utterance: its first speak starts it
            await self.push_frame(item)
        elif self._held.pending:
            self._held.add_after(self._speech_end, item)  # after the last sample of the speech before it
        else:
            await self.push_frame(item)

    async def _speak(self, pcm: np.ndarray, rate: int, entered: float, gen: int) -> None:
        assert self._client is not None
        fields_: dict[str, Any] = ({"append": True} if self._utterance_open
                                   else {"start": round(self.engine_now() + self._lead_s, 4)})
        if self._marks:
            fields_["marks"], self._marks = self._marks, []
        try:
            reply = await self._client.call("speak", avatar=self._avatar, audio=pcm.astype("<i2").tobytes(),
                                            format="pcm_s16le", sample_rate=int(rate), **fields_)
        except EngineClientError as exc:
            self.stats.speech_without_face += 1
            if exc.code == "engine_unavailable":
                await self._lost(exc)
            else:
                await self._report(exc, "speak failed: this speech is heard without its face")
            if gen == self._gen:
                await self.push_frame(TTSAudioRawFrame(audio=pcm.astype("<i2").tobytes(), sample_rate=rate,
                                                       num_channels=1))
            return
        self.stats.speaks += 1
        if gen != self._gen:  # interrupted while the speak was in flight: it may have landed after the clear
            await self._clear()
            return
        self._utterance_open = True
        start = float(reply["start"])
        self._held.add(Segment(start, pcm, rate, entered))
        self._speech_end = max(self._speech_end, start + len(pcm) / rate)
