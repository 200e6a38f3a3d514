"""Typed refusals of audio, each with its own wire code (subclasses of BadRequest, so callers that catch
BadRequest still catch them). The bridge maps the codes: bad_audio 400, unsupported_audio 415, audio_too_long 413."""

from __future__ import annotations

from engine.errors import BadRequest


class BadAudio(BadRequest):
    """Audio that cannot be played: a header cut short, no samples, NaN/inf, absurd rate, odd PCM byte count."""

    code = "bad_audio"


class UnsupportedAudio(BadAudio):
    """Bytes that are not a WAV at all, or a WAV encoding we do not read (ADPCM, mu-law, ...)."""

    code = "unsupported_audio"


class AudioTooLong(BadAudio):
    """More than the limit (60 s by default) in one message: refused before decoding the samples."""

    code = "audio_too_long"
