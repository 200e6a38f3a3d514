"""Typed refusals of audio, each with its own wire code (subclasses of BadRequest, so callers that catch
BadRequest still catch them). They live in engine/errors.py with every other code; the speech package's modules
import them from here. The bridge maps the codes: bad_audio 400, unsupported_audio 415, audio_too_long 413."""

from __future__ import annotations

from engine.errors import AudioTooLong, BadAudio, UnsupportedAudio

__all__ = ["AudioTooLong", "BadAudio", "UnsupportedAudio"]
