"""Audio intake: every supported WAV and raw PCM layout decodes to the same mono samples; every bad input is a
typed error (never anything else)."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from engine.errors import BadRequest, EngineError
from engine.speech.audio import MAX_SECONDS, Resampler, decode_audio, resample
from engine.speech.errors import AudioTooLong, BadAudio, UnsupportedAudio

RATE = 16000


def tone(n: int = 1600, rate: int = RATE) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def wav(body: bytes, rate: int = RATE, channels: int = 1, bits: int = 16, tag: int = 1,
        data_size: int | None = None, extensible: bool = False) -> bytes:
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI16s", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0,
                          struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71")
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    size = len(body) if data_size is None else data_size
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def encode(x: np.ndarray, bits: int, tag: int = 1) -> bytes:
    if tag == 3:
        return x.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    if bits == 24:
        v = np.round(x * 2 ** 23).astype(np.int32)
        return np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], axis=1).astype(np.uint8).tobytes()
    return np.round(x * 2 ** (bits - 1)).astype("<i2" if bits == 16 else "<i4").tobytes()


@pytest.mark.parametrize(("bits", "tag", "tol"), [(8, 1, 1 / 100), (16, 1, 1e-4), (24, 1, 1e-6), (32, 1, 1e-8),
                                                  (32, 3, 0.0), (64, 3, 0.0)])
def test_wav_layouts_decode_to_the_same_samples(bits: int, tag: int, tol: float) -> None:
    x = tone()
    pcm = decode_audio(wav(encode(x, bits, tag), bits=bits, tag=tag))
    assert pcm.sample_rate == RATE and pcm.samples.dtype == np.float32
    np.testing.assert_allclose(pcm.samples, x, atol=tol + 1e-7)
    ext = decode_audio(wav(encode(x, bits, tag), bits=bits, tag=tag, extensible=True))
    np.testing.assert_array_equal(ext.samples, pcm.samples)


def test_stereo_is_mixed_to_mono() -> None:
    x = tone()
    both = np.stack([x, -x * 0.5], axis=1).reshape(-1)
    pcm = decode_audio(wav(encode(both, 16), channels=2))
    np.testing.assert_allclose(pcm.samples, 0.25 * x, atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 24000, 44100, 48000])
def test_rates(rate: int) -> None:
    pcm = decode_audio(wav(encode(tone(rate // 10, rate), 16), rate=rate))
    assert pcm.sample_rate == rate and abs(pcm.duration - 0.1) < 1.0 / rate


@pytest.mark.parametrize("declared", [0xFFFFFFFF, 0, 10_000_000])
def test_streaming_wav_with_unknown_or_long_length_plays_what_is_there(declared: int) -> None:
    x = tone()
    body = encode(x, 16) + b"\x01"  # and a cut-off last sample
    pcm = decode_audio(wav(body, data_size=declared))
    assert len(pcm.samples) == len(x)


def test_raw_pcm() -> None:
    x = tone()
    s16 = decode_audio(encode(x, 16), "pcm_s16le", 24000)
    f32 = decode_audio(x.astype("<f4").tobytes(), "pcm_f32le", 24000)
    assert s16.sample_rate == f32.sample_rate == 24000
    np.testing.assert_allclose(s16.samples, x, atol=1e-4)
    np.testing.assert_array_equal(f32.samples, x)


def _bad_block() -> bytes:
    data = bytearray(wav(encode(tone(), 16)))
    data[32:34] = struct.pack("<H", 3)  # block align 3 for 16-bit mono
    return bytes(data)


def _nan_wav() -> bytes:
    x = tone()
    x[10] = np.nan
    return wav(x.astype("<f4").tobytes(), bits=32, tag=3)


BAD: list[tuple[str, object, type[EngineError], str]] = [
    ("not a wav", (b"ID3\x03 this is an mp3", "wav", None), UnsupportedAudio, "unsupported_audio"),
    ("empty", (b"", "wav", None), UnsupportedAudio, "unsupported_audio"),
    ("header cut short", (wav(encode(tone(), 16))[:30], "wav", None), BadAudio, "bad_audio"),
    ("no data chunk", (wav(encode(tone(), 16))[:36], "wav", None), BadAudio, "bad_audio"),
    ("zero length", (wav(b""), "wav", None), BadAudio, "bad_audio"),
    ("over 60 s", (wav(bytes(2 * 8000 * 61), rate=8000), "wav", None), AudioTooLong, "audio_too_long"),
    ("NaN", (_nan_wav(), "wav", None), BadAudio, "bad_audio"),
    ("inf raw", (np.array([0, np.inf], "<f4").tobytes(), "pcm_f32le", 16000), BadAudio, "bad_audio"),
    ("rate too low", (wav(encode(tone(), 16), rate=1000), "wav", None), BadAudio, "bad_audio"),
    ("rate absurd", (wav(encode(tone(), 16), rate=4_000_000), "wav", None), BadAudio, "bad_audio"),
    ("adpcm", (wav(bytes(400), bits=4, tag=2), "wav", None), UnsupportedAudio, "unsupported_audio"),
    ("wrong block align", (_bad_block(), "wav", None), BadAudio, "bad_audio"),
    ("9 channels", (wav(bytes(18 * 10), channels=9), "wav", None), BadAudio, "bad_audio"),
    ("odd s16 bytes", (b"\x00\x01\x02", "pcm_s16le", 16000), BadAudio, "bad_audio"),
    ("f32 not a multiple of 4", (bytes(6), "pcm_f32le", 16000), BadAudio, "bad_audio"),
    ("raw without rate", (bytes(4), "pcm_s16le", None), BadAudio, "bad_audio"),
    ("raw rate a float", (bytes(4), "pcm_s16le", 16000.5), BadAudio, "bad_audio"),
    ("raw rate a bool", (bytes(4), "pcm_s16le", True), BadAudio, "bad_audio"),
    ("raw over 60 s", (bytes(2 * 8000 * 61), "pcm_s16le", 8000), AudioTooLong, "audio_too_long"),
    ("unknown format", (bytes(4), "mp3", None), UnsupportedAudio, "unsupported_audio"),
    ("not bytes", ("a string", "wav", None), BadAudio, "bad_audio"),
]


@pytest.mark.parametrize(("data", "error", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_audio_is_a_typed_error(data: tuple, error: type[EngineError], code: str) -> None:
    with pytest.raises(error) as info:
        decode_audio(*data)
    assert isinstance(info.value, BadRequest) and info.value.to_wire()["code"] == code
    assert info.value.message


def test_the_limit_is_checked_before_decoding() -> None:
    assert MAX_SECONDS == 60.0
    with pytest.raises(AudioTooLong):
        decode_audio(wav(bytes(16), data_size=0xFFFFFFFF) + bytes(2 * RATE * 61))


def test_random_bytes_never_raise_anything_but_typed_errors() -> None:
    rng = random.Random(7)
    good = wav(encode(tone(), 16))
    decoded = refused = 0
    for _ in range(400):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data) if rng.random() < 0.3 else 44)] = rng.randrange(256)
        data = bytes(data[: rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
        try:
            pcm = decode_audio(data)
        except BadAudio:
            refused += 1
            continue
        decoded += 1
        assert np.isfinite(pcm.samples).all() and len(pcm.samples) > 0
    # both paths ran: a decoder that refused everything (or nothing) would pass the loop above unnoticed
    assert decoded >= 40 and refused >= 40, (decoded, refused)


def test_resampler_streams_exactly_what_the_whole_gives() -> None:
    x = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    whole = resample(x, 24000)
    r = Resampler(24000)
    parts = [r.push(x[i: i + 777]) for i in range(0, len(x), 777)] + [r.push(np.zeros(0, np.float32), last=True)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
