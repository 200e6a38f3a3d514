"""Recorded-voice speech with phone timings, for measuring closures where they truly are.

Festival's diphone voices (kal, ked: US male, concatenated from a real speaker's recorded diphones) and its HTS
voice (slt: US female, a statistical model trained on a real speaker's recordings) say a sentence and label every
phone with its end time; ``festival`` and the voices are Debian packages (tools/system-deps.sh test). Their m's are
far louder against the vowels than espeak-ng's (docs/speech.md gives the figures), which is what the closure test
needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.speech.audio import Pcm, decode_audio

FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
BILABIALS = ("m", "b", "p")
# Festival's (CMU) vowels; the back and rounded ones are the ones a nasal detector could mistake for a murmur
VOWELS = ("aa", "ae", "ah", "ao", "aw", "ax", "ay", "eh", "er", "ey", "ih", "iy", "ow", "oy", "uh", "uw")
BACK = ("aa", "ao", "ow", "uh", "uw", "aw", "oy")
LIP_REACH = 0.03  # s: the lips count as meeting on a bilabial if they do within this of its labelled span
CLOSURE_BEFORE_RELEASE = 0.08  # s: espeak-ng times a stop from its release; its closure lies up to this before


@dataclass(frozen=True)
class Phone:
    name: str
    start: float  # s
    end: float


def festival(text: str, voice: str, folder: Path) -> tuple[Pcm, list[Phone]]:
    """Festival says ``text`` in ``voice``: the audio and its phones with their times."""
    if shutil.which("festival") is None:
        raise AssertionError("festival is not installed: tools/system-deps.sh test installs it and its voices")
    folder.mkdir(parents=True, exist_ok=True)
    wav, segs = folder / f"{voice}.wav", folder / f"{voice}.segs"
    quoted = text.replace("\\", " ").replace('"', " ")
    subprocess.run(["festival", "--batch", f"(voice_{voice})", f'(set! utt (SynthText "{quoted}"))',
                    f"(utt.save.wave utt \"{wav}\" 'riff)", f'(utt.save.segs utt "{segs}")'],
                   check=True, capture_output=True, timeout=60)
    phones: list[Phone] = []
    start = 0.0
    for line in segs.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3 or line.startswith("#"):
            continue
        end = float(parts[0])
        phones.append(Phone(parts[2], start, end))
        start = end
    return decode_audio(wav.read_bytes()), phones


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_PHONEME_EVENT, _LIST_END = 7, 0
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_espeak: dict[str, object] = {}


def espeak_phones(text: str, voice: str = "en", pitch: int = 50, speed: int = 175) -> tuple[Pcm, list[Phone]]:
    """espeak-ng (its library, as the espeak-ng command uses it) says ``text``: the audio and its phones, timed by
    espeak-ng's own phoneme events (each phone from its event to the next one's)."""
    if "lib" not in _espeak:
        path = ctypes.util.find_library("espeak-ng")
        if path is None:
            raise AssertionError("libespeak-ng is not installed: tools/system-deps.sh test installs espeak-ng")
        lib = ctypes.CDLL(path)
        rate = lib.espeak_Initialize(2, 0, None, 0x0001 | 0x8000)  # synchronous, phoneme events, don't exit
        if rate <= 0:
            raise AssertionError("espeak_Initialize failed")
        _espeak.update(lib=lib, rate=rate)
    lib, rate = _espeak["lib"], int(_espeak["rate"])  # type: ignore[call-overload]
    chunks: list[np.ndarray] = []
    events: list[tuple[str, float]] = []

    def callback(wav: ctypes.POINTER(ctypes.c_short), n: int, ev: ctypes.POINTER(_Event)) -> int:  # type: ignore[valid-type]
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while ev[i].type != _LIST_END:
            if ev[i].type == _PHONEME_EVENT:
                events.append((ev[i].id.decode("ascii", "replace"), ev[i].sample / rate))
            i += 1
        return 0

    keep = _CALLBACK(callback)
    lib.espeak_SetSynthCallback(keep)  # type: ignore[attr-defined]
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:  # type: ignore[attr-defined]
        raise AssertionError(f"espeak-ng has no voice {voice}")
    lib.espeak_SetParameter(1, speed, 0)  # type: ignore[attr-defined]
    lib.espeak_SetParameter(3, pitch, 0)  # type: ignore[attr-defined]
    data = text.encode() + b"\0"
    lib.espeak_Synth(data, len(data), 0, 1, 0, 0x100 | 0x1000, None, None)  # type: ignore[attr-defined]
    lib.espeak_Synchronize()  # type: ignore[attr-defined]
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
    ends = [t for _, t in events[1:]] + [len(samples) / rate]
    phones = [Phone(name, start, end) for (name, start), end in zip(events, ends, strict=True) if name]
    return Pcm(samples, rate), phones



def is_vowel(name: str, festival_names: bool) -> bool:
    """A vowel in Festival's (CMU) phone names, or else in espeak-ng's (which start with a vowel letter, @, 0 or 3)."""
    return name in VOWELS if festival_names else name[:1] in "aAeEiIoOuUyYV@03"


def is_back(name: str, festival_names: bool) -> bool:
    """A back or rounded vowel (/u/, /o/, /a/ of father, ...)."""
    return name in BACK if festival_names else name[:1] in "uUoO0A" or name in ("aU", "V")


def lip_span(phone: Phone, festival_names: bool) -> tuple[float, float]:
    """Where the lips must meet for a bilabial: its span and LIP_REACH either side; for espeak-ng's b and p, whose
    phoneme event comes at the release (the silent closure just before it is timed as the previous phone), from
    CLOSURE_BEFORE_RELEASE before it."""
    before = LIP_REACH if festival_names or phone.name == "m" else CLOSURE_BEFORE_RELEASE
    return phone.start - before, phone.end + LIP_REACH
