"""Audio intake: WAV or raw PCM bytes -> mono float32 PCM, checked, and the resampler used by the analysis.

Why our own RIFF reader: Python's ``wave`` reads integer PCM only and trusts the header's lengths; TTS streaming
writers emit WAVs whose data length is unknown (0xFFFFFFFF) or longer than what follows, and we must play what is
there. Every refusal is a typed error (engine.speech.errors); nothing a client sends raises anything else.
"""

from __future__ import annotations

import numbers
import struct
from dataclasses import dataclass

import numpy as np
import soxr

from engine.speech.errors import AudioTooLong, BadAudio, UnsupportedAudio

ANALYSIS_RATE = 8_000  # Hz: F1 and F2 live below 3.5 kHz; 80-sample hop, order-10 LPC (as telephone LPC-10)
MIN_RATE, MAX_RATE = 8_000, 48_000
MAX_SECONDS = 60.0
MAX_CHANNELS = 8
FORMATS = ("wav", "pcm_s16le", "pcm_f32le")

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


@dataclass(frozen=True)
class Pcm:
    """Mono samples in -1..1 (float32) at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def validate_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral):
        raise BadAudio(f"sample_rate must be an integer in {MIN_RATE}..{MAX_RATE} Hz, got {sample_rate!r}")
    rate = int(sample_rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"sample_rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    return rate


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
    _check_length(len(data) // width, rate, max_seconds)
    dtype = np.dtype("<i2") if width == 2 else np.dtype("<f4")
    return Pcm(_to_float(np.frombuffer(data, dtype), 1), rate)


def _check_length(frames: int, rate: int, max_seconds: float) -> None:
    if frames <= 0:
        raise BadAudio("audio has no samples")
    if frames > max_seconds * rate:
        raise AudioTooLong(f"audio is {frames / rate:.1f} s, over the {max_seconds:g} s limit of one message")


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
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise UnsupportedAudio("not a WAV file (no RIFF/WAVE header)")
    if data[:4] == b"RIFX":
        raise UnsupportedAudio("big-endian WAV (RIFX) is not supported")
    pos, fmt, body = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        start = pos + 8
        if tag == b"fmt ":
            if size < 16 or start + 16 > len(data):
                raise BadAudio("WAV fmt chunk is cut short")
            fmt = data[start:start + min(size, 40)]
        elif tag == b"data":
            # a streaming writer's length is unknown (0xFFFFFFFF, or 0) or longer than the file: play what is there
            end = len(data) if size in (0, 0xFFFFFFFF) else min(start + size, len(data))
            body = data[start:end]
            break
        pos = start + size + (size & 1)
    if fmt is None:
        raise BadAudio("WAV has no fmt chunk before its data" if body is not None else "WAV header is cut short")
    if body is None:
        raise BadAudio("WAV has no data chunk (header cut short?)")
    tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE:
        if len(fmt) < 26:
            raise BadAudio("WAV extensible fmt chunk is cut short")
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadAudio(f"WAV has {channels} channels; 1..{MAX_CHANNELS} are read")
    rate = validate_rate(rate)
    dtypes = {(_PCM, 8): "u1", (_PCM, 16): "<i2", (_PCM, 32): "<i4", (_FLOAT, 32): "<f4", (_FLOAT, 64): "<f8"}
    if (tag, bits) == (_PCM, 24):
        width = 3
    elif (tag, bits) in dtypes:
        width = bits // 8
    else:
        raise UnsupportedAudio(f"WAV encoding {tag} with {bits} bits is not read (PCM 8/16/24/32, float 32/64 are)")
    if block != width * channels:
        raise BadAudio(f"WAV block align {block} does not match {channels} x {bits}-bit samples")
    frames = len(body) // block  # a last partial frame (a cut stream) is dropped
    _check_length(frames, rate, max_seconds)
    body = body[:frames * block]
    if width == 3:
        b = np.frombuffer(body, np.uint8).reshape(-1, 3).astype(np.int32)
        raw = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 8  # sign-extend 24 -> 32 bits
        x = raw.astype(np.float32) / float(2 ** 23)
        if channels > 1:
            x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
        return Pcm(np.ascontiguousarray(x), rate)
    return Pcm(_to_float(np.frombuffer(body, np.dtype(dtypes[(tag, bits)])), channels), rate)


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

