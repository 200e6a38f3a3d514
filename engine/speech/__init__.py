"""Speech: audio bytes -> PCM -> 10 ms analysis frames -> mouth controls over time (docs/speech.md).

One module per step: ``audio`` (decode, limits, resample), ``analysis`` (per-frame acoustic features),
``mouth`` (features -> the jaw and lip axes and the mouth shapes, streaming); ``phonetic`` is the measured, unused
alternative (PocketSphinx). No I/O, no threads.
"""

from engine.speech.audio import ANALYSIS_RATE, Pcm, decode_audio
from engine.speech.errors import AudioTooLong, BadAudio, UnsupportedAudio
from engine.speech.mouth import HOP_S, MOUTH_CONTROLS, MouthAnalyser, analyse

__all__ = [
    "ANALYSIS_RATE", "HOP_S", "MOUTH_CONTROLS", "AudioTooLong", "BadAudio", "MouthAnalyser", "Pcm",
    "UnsupportedAudio", "analyse", "decode_audio",
]
