"""Real synthetic speech for the speech tests: espeak-ng writes the WAVs once per session (no committed audio).

The vowels use the German voice: English espeak-ng fronts /u:/ (F2 ~1450 Hz, the "goose" vowel), while German
[u:] is the back rounded vowel the rounding test is about.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.speech.audio import Pcm, decode_audio
from tests.speech.voices import Phone, espeak_phones, festival

SENTENCE = "Hello, my mom bought a puppy. Please be happy."


def espeak(out: Path, text: str, voice: str = "en", speed: int = 120, pitch: int = 50) -> Path:
    """Write text (or [[phonemes]]) as a WAV with espeak-ng."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: tools/system-deps.sh installs it")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text],
                   check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Pcm]:
    """speech(text, voice="en", pitch=50) -> Pcm, cached per session."""
    folder = tmp_path_factory.mktemp("espeak")
    cache: dict[tuple[str, str, int], Pcm] = {}

    def make(text: str, voice: str = "en", pitch: int = 50) -> Pcm:
        key = (text, voice, pitch)
        if key not in cache:
            path = espeak(folder / f"s{len(cache)}.wav", text, voice, pitch=pitch)
            cache[key] = decode_audio(path.read_bytes())
        return cache[key]

    return make


@pytest.fixture(scope="session")
def wav_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The sentence as espeak-ng's own WAV bytes (22050 Hz mono 16-bit)."""
    return espeak(tmp_path_factory.mktemp("espeak_wav") / "sentence.wav", SENTENCE).read_bytes()


@pytest.fixture(scope="session")
def timed_speech(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Pcm, list[Phone]]]:
    """timed_speech(text, voice, pitch=50) -> (Pcm, phones with times), cached per session. Festival's voices
    (names ending _diphone or _hts) or espeak-ng's (through its library, with its phoneme events)."""
    folder = tmp_path_factory.mktemp("timed")
    cache: dict[tuple[str, str, int], tuple[Pcm, list[Phone]]] = {}

    def make(text: str, voice: str, pitch: int = 50) -> tuple[Pcm, list[Phone]]:
        key = (text, voice, pitch)
        if key not in cache:
            if voice.endswith(("_diphone", "_hts")):
                cache[key] = festival(text, voice, folder / str(len(cache)))
            else:
                cache[key] = espeak_phones(text, voice, pitch)
        return cache[key]

    return make
