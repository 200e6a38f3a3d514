"""Audio intake: WAV or raw PCM bytes -> mono float32 PCM, checked, and the resampler used by the analysis.

The WAV header is read by engine/wav.py (stdlib only, shared with the bridge); this decodes its samples. Every
refusal is a typed error (engine.speech.errors); nothing a client sends raises anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from engine.speech.errors import BadAudio, UnsupportedAudio
from engine.wav import (  # noqa: F401  (MIN_RATE, MAX_RATE, MAX_CHANNELS, validate_rate: re-exported)
    FLOAT,
    MAX_CHANNELS,
    MAX_RATE,
    MIN_RATE,
    PCM,
    check_length,
    read_header,
    validate_rate,
)

ANALYSIS_RATE = 8_000  # Hz: F1 and F2 live below 3.5 kHz; 80-sample hop, order-10 LPC (as telephone LPC-10)
MAX_SECONDS = 60.0
FORMATS = ("wav", "pcm_s16le", "pcm_f32le")


@dataclass(frozen=True)
class Pcm:
    """Mono samples in -1..1 (float32) at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def decode_audio(data: bytes, fmt: str = "wav", sample_rate: int | None = None,
                 max_seconds: float = MAX_SECONDS) -> Pcm:
    """Bytes in one of FORMATS -> mono Pcm. ``sample_rate`` is required for raw PCM and ignored for WAV."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BadAudio(f"audio must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if fmt == "wav":
        return _decode_wav(data, max_seconds)
    if fmt not in FORMATS:
        raise UnsupportedAudio(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if sample_rate is None:
        raise BadAudio(f"format {fmt} needs sample_rate")
    rate = validate_rate(sample_rate)
    width = 2 if fmt == "pcm_s16le" else 4
    if len(data) % width:
        raise BadAudio(f"{fmt} needs a multiple of {width} bytes, got {len(data)}")
    check_length(len(data) // width, rate, max_seconds)
    dtype = np.dtype("<i2") if width == 2 else np.dtype("<f4")
    return Pcm(_to_float(np.frombuffer(data, dtype), 1), rate)


def _to_float(raw: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved samples of any supported dtype -> mono float32 in -1..1; NaN/inf refused."""
    if raw.dtype.kind == "f":
        x = raw.astype(np.float32)
        if not np.isfinite(x).all():
            raise BadAudio("audio has NaN or infinite samples")
    elif raw.dtype == np.uint8:
        x = (raw.astype(np.float32) - 128.0) / 128.0
    else:
        x = raw.astype(np.float32) / float(2 ** (8 * raw.dtype.itemsize - 1))
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _decode_wav(data: bytes, max_seconds: float) -> Pcm:
    head = read_header(data, max_seconds)
    body, channels = data[head.start:head.end], head.channels
    if head.bits == 24:
        b = np.frombuffer(body, np.uint8).reshape(-1, 3).astype(np.int32)
        raw = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 8  # sign-extend 24 -> 32 bits
        x = raw.astype(np.float32) / float(2 ** 23)
        if channels > 1:
            x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
        return Pcm(np.ascontiguousarray(x), head.rate)
    dtypes = {(PCM, 8): "u1", (PCM, 16): "<i2", (PCM, 32): "<i4", (FLOAT, 32): "<f4", (FLOAT, 64): "<f8"}
    return Pcm(_to_float(np.frombuffer(body, np.dtype(dtypes[(head.encoding, head.bits)])), channels), head.rate)


class Resampler:
    """Streaming resampler to ANALYSIS_RATE (soxr, high quality): chunks give exactly what the whole gives."""

    def __init__(self, rate: int, out_rate: int = ANALYSIS_RATE) -> None:
        self.rate, self.out_rate = rate, out_rate
        self._stream = None if rate == out_rate else soxr.ResampleStream(rate, out_rate, 1, dtype="float32")

    def push(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x, last=last)


def resample(samples: np.ndarray, rate: int, out_rate: int = ANALYSIS_RATE) -> np.ndarray:
    """Whole-signal resampling (soxr HQ)."""
    if rate == out_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    return soxr.resample(np.ascontiguousarray(samples, dtype=np.float32), rate, out_rate).astype(np.float32)

