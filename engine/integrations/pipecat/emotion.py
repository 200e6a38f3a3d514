"""The LLM's emotion tags: ``[happy]`` in its text becomes a mark on the face, and is never spoken.

The convention (documented in docs/pipecat.md): the LLM writes a tag ``[expression]`` or ``[expression intensity]``
(an expression of engine.constants.EXPRESSIONS, intensity 0..1, default 0.8) where the feeling starts, usually at
the start of a sentence: ``"[happy] Great to see you! [sad 0.6] But I have to go."``. ``TagStripper`` (pure, fed
the LLM's text token by token: a tag may be split across tokens) cuts the text into pieces at tags and sentence
ends and strips the tags. ``LivePortraitEmotionTags`` (between the LLM and the TTS) sends each piece on as one
``AggregatedTextFrame`` (so the TTS speaks it as it is, not merged with the next piece) and each tag as an
``AvatarEmotionFrame`` between them. The TTS keeps non-text frames in order behind the audio it is making, so the
``AvatarEmotionFrame`` reaches LivePortraitVideoService after the audio of the text before the tag and before the
audio after it; the service sends it as a ``mark`` at t = 0 of the next audio it streams: the face changes when
that sentence is heard. Unknown words in brackets (``[laughs]``) are left in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipecat.frames.frames import (
    AggregatedTextFrame,
    DataFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from engine.constants import EXPRESSIONS, INTENSITY_MAX, INTENSITY_MIN

DEFAULT_INTENSITY = 0.8
MAX_TAG_CHARS = 32  # an opening bracket held longer than this is plain text
_TAG = re.compile(r"\[\s*(" + "|".join(EXPRESSIONS) + r")(?:[\s:]+(\d*\.?\d+))?\s*\]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+")


@dataclass(frozen=True)
class Emotion:
    """An expression the LLM chose, and how strongly (0..1)."""

    expression: str
    intensity: float = DEFAULT_INTENSITY


@dataclass
class AvatarEmotionFrame(DataFrame):
    """The face should show ``expression`` at ``intensity`` from the next speech on (LivePortraitVideoService)."""

    expression: str = "neutral"
    intensity: float = DEFAULT_INTENSITY


def parse_tag(text: str) -> Emotion | None:
    """``[happy]`` / ``[Happy 0.5]`` -> Emotion; anything else -> None."""
    m = _TAG.fullmatch(text.strip())
    if m is None:
        return None
    intensity = DEFAULT_INTENSITY if m.group(2) is None else float(m.group(2))
    return Emotion(m.group(1).lower(), min(INTENSITY_MAX, max(INTENSITY_MIN, intensity)))


class TagStripper:
    """Streaming text in; pieces of text (str) and Emotions out, in order, tags removed.

    Text is let go at sentence ends and at tags; ``flush`` lets the rest go (end of the LLM's response)."""

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, text: str) -> list[str | Emotion]:
        self._buf += text
        out: list[str | Emotion] = []
        while True:
            m = _TAG.search(self._buf)
            if m is None:
                break
            self._emit_text(self._buf[: m.start()], out)
            emotion = parse_tag(m.group(0))
            if emotion is not None:
                out.append(emotion)
            self._buf = self._buf[m.end():].lstrip()
        # sentence ends before any bracket still open (it may be the start of a tag)
        open_at = self._buf.rfind("[")
        if open_at >= 0 and "]" not in self._buf[open_at:] and len(self._buf) - open_at <= MAX_TAG_CHARS:
            head, tail = self._buf[:open_at], self._buf[open_at:]
        else:
            head, tail = self._buf, ""
        ends = list(_SENTENCE_END.finditer(head))
        if ends:
            cut = ends[-1].end()
            self._emit_text(head[:cut], out)
            head = head[cut:]
        self._buf = head + tail
        return out

    def flush(self) -> list[str | Emotion]:
        out: list[str | Emotion] = []
        self._emit_text(self._buf, out)
        self._buf = ""
        return out

    def reset(self) -> None:
        self._buf = ""

    @staticmethod
    def _emit_text(text: str, out: list[str | Emotion]) -> None:
        if text.strip():
            out.append(text)


class LivePortraitEmotionTags(FrameProcessor):
    """Between the LLM and the TTS: strips ``[emotion]`` tags from the LLM's text and sends AvatarEmotionFrames
    in their place, in order with the text around them."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._stripper = TagStripper()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._push_pieces(self._stripper.feed(frame.text))
            return
        if isinstance(frame, (LLMFullResponseEndFrame, EndFrame)):
            await self._push_pieces(self._stripper.flush())
        elif isinstance(frame, InterruptionFrame):
            self._stripper.reset()
        await self.push_frame(frame, direction)

    async def _push_pieces(self, pieces: list[str | Emotion]) -> None:
        for piece in pieces:
            if isinstance(piece, Emotion):
                await self.push_frame(AvatarEmotionFrame(expression=piece.expression, intensity=piece.intensity))
            else:
                await self.push_frame(AggregatedTextFrame(text=piece, text_type="sentence"))
