"""The RIFF/WAVE header: format, rate, channels and where the samples are, checked; stdlib only.

Why our own RIFF reader: Python's ``wave`` reads integer PCM only and trusts the header's lengths; TTS streaming
writers emit WAVs whose data length is unknown (0xFFFFFFFF) or longer than what follows, and we must play what is
there. engine/speech/audio.py decodes the samples after this; the bridge reads only this (a typed 400/413/415 and the
clip's length before a round trip, without numpy). Every refusal is a typed error from engine/errors.py.
"""

from __future__ import annotations

import numbers
import struct
from dataclasses import dataclass

from engine.errors import AudioTooLong, BadAudio, UnsupportedAudio

MIN_RATE, MAX_RATE = 8_000, 48_000
MAX_CHANNELS = 8
PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
ENCODINGS = {(PCM, 8), (PCM, 16), (PCM, 24), (PCM, 32), (FLOAT, 32), (FLOAT, 64)}


@dataclass(frozen=True)
class WavHeader:
    """A checked WAV: ``encoding`` (PCM or FLOAT) with ``bits`` per sample; samples in ``data[start:end]``."""

    encoding: int
    bits: int
    channels: int
    rate: int
    frames: int  # whole frames present (a last partial frame of a cut stream is dropped)
    start: int
    end: int

    @property
    def duration(self) -> float:
        return self.frames / self.rate


def validate_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral):
        raise BadAudio(f"sample_rate must be an integer in {MIN_RATE}..{MAX_RATE} Hz, got {sample_rate!r}")
    rate = int(sample_rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"sample_rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    return rate


def check_length(frames: int, rate: int, max_seconds: float) -> None:
    if frames <= 0:
        raise BadAudio("audio has no samples")
    if frames > max_seconds * rate:
        raise AudioTooLong(f"audio is {frames / rate:.1f} s, over the {max_seconds:g} s limit of one message")


def read_header(data: bytes, max_seconds: float) -> WavHeader:
    """Walk the RIFF chunks to ``fmt `` and ``data``; refuse what the decoder would refuse, before any sample."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise UnsupportedAudio("not a WAV file (no RIFF/WAVE header)")
    if data[:4] == b"RIFX":
        raise UnsupportedAudio("big-endian WAV (RIFX) is not supported")
    pos, fmt, span = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        start = pos + 8
        if tag == b"fmt ":
            if size < 16 or start + 16 > len(data):
                raise BadAudio("WAV fmt chunk is cut short")
            fmt = data[start:start + min(size, 40)]
        elif tag == b"data":
            # a streaming writer's length is unknown (0xFFFFFFFF, or 0) or longer than the file: play what is there
            span = (start, len(data) if size in (0, 0xFFFFFFFF) else min(start + size, len(data)))
            break
        pos = start + size + (size & 1)
    if fmt is None:
        raise BadAudio("WAV has no fmt chunk before its data" if span is not None else "WAV header is cut short")
    if span is None:
        raise BadAudio("WAV has no data chunk (header cut short?)")
    encoding, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if encoding == EXTENSIBLE:
        if len(fmt) < 26:
            raise BadAudio("WAV extensible fmt chunk is cut short")
        encoding = struct.unpack_from("<H", fmt, 24)[0]
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadAudio(f"WAV has {channels} channels; 1..{MAX_CHANNELS} are read")
    rate = validate_rate(rate)
    if (encoding, bits) not in ENCODINGS:
        raise UnsupportedAudio(f"WAV encoding {encoding} with {bits} bits is not read (PCM 8/16/24/32, float 32/64 "
                               "are)")
    if block != bits // 8 * channels:
        raise BadAudio(f"WAV block align {block} does not match {channels} x {bits}-bit samples")
    frames = (span[1] - span[0]) // block
    check_length(frames, rate, max_seconds)
    return WavHeader(encoding, bits, channels, rate, frames, span[0], span[0] + frames * block)
