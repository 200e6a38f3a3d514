"""The phonetic candidate (Rhubarb's way): PocketSphinx allphone decoding -> phones -> mouth shapes per 10 ms.

Measured against the formant path (engine/speech/mouth.py) on the same espeak-ng speech, rendered frames and dlib
landmarks (bench/bench_speech.py, docs/speech.md): it is not used by the engine. Kept so the comparison can be rerun
when a better acoustic model or real recorded voices are at hand. Needs the optional ``pocketsphinx`` wheel (5.1.1:
US English acoustic model and the phone language model en-us-phone.lm.bin ship inside it; linux x86_64 and aarch64).

Shapes are the formant path's controls (MOUTH_CONTROLS) per phone class: closed (M B P: pressed), lip-bite (F V),
spread (IY IH EY EH AE), round (UW UH OW W AO OY), open (AA AH AW AY), neutral between words (SIL). Each phone's
shape is scaled by the loudness the formant path measures, then widened and smoothed as it is.
"""

from __future__ import annotations

import os

import numpy as np

from engine.speech.analysis import FeatureStream
from engine.speech.audio import Pcm, resample
from engine.speech.mouth import HOP_S, MOUTH_CONTROLS, _smooth, _State, _targets

RATE = 16_000  # the acoustic model's rate
# (jawOpen, mouthLowerDown, mouthUpperUp, mouthFunnel, mouthPucker, mouthStretch, mouthPress, mouthRollLower)
_OPEN = (0.6, 0.7, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0)
_SPREAD = (0.25, 0.6, 0.4, 0.0, 0.0, 0.5, 0.0, 0.0)
_ROUND = (0.2, 0.55, 0.1, 0.1, 0.75, 0.0, 0.0, 0.0)
_ROUND_OPEN = (0.4, 0.6, 0.15, 0.45, 0.2, 0.0, 0.0, 0.0)
_CLOSED = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0)
_BITE = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7)
_CONSONANT = (0.15, 0.35, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0)
SHAPES: dict[str, tuple[float, ...]] = {
    **{p: _OPEN for p in ("AA", "AH", "AW", "AY")},
    **{p: _SPREAD for p in ("IY", "IH", "EY", "EH", "AE", "Y")},
    **{p: _ROUND for p in ("UW", "UH", "W", "OY", "ER", "R")},
    **{p: _ROUND_OPEN for p in ("OW", "AO")},
    **{p: _CLOSED for p in ("M", "B", "P")},
    **{p: _BITE for p in ("F", "V")},
    "SIL": (0.0,) * 8, "+SPN+": (0.0,) * 8, "+NSN+": (0.0,) * 8,
}


def available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


class PhoneDecoder:
    """One PocketSphinx allphone decoder (about 0.15 s to build; reuse it)."""

    def __init__(self) -> None:
        import pocketsphinx

        model = pocketsphinx.get_model_path()
        config = pocketsphinx.Config(hmm=os.path.join(model, "en-us", "en-us"),
                                     allphone=os.path.join(model, "en-us", "en-us-phone.lm.bin"),
                                     lw=2.0, beam=1e-20, pbeam=1e-20, loglevel="FATAL")
        self._decoder = pocketsphinx.Decoder(config)

    def phones(self, pcm: Pcm) -> list[tuple[str, float, float]]:
        """(phone, start s, end s) over the whole utterance."""
        x = resample(pcm.samples, pcm.sample_rate, RATE) if pcm.sample_rate != RATE else pcm.samples
        raw = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(raw, full_utt=True)
        d.end_utt()
        return [(s.word, s.start_frame * 0.01, (s.end_frame + 1) * 0.01) for s in d.seg()]


def analyse_phonetic(pcm: Pcm, decoder: PhoneDecoder) -> np.ndarray:
    """Rows of MOUTH_CONTROLS every HOP_S, as ``engine.speech.mouth.analyse`` gives them, from decoded phones."""
    feats = FeatureStream(pcm.sample_rate).push(pcm.samples, last=True)
    acoustic = _targets(feats, 0, len(feats), _State())
    n = len(feats)
    # the formant path's opening at a loud syllable is about 1; its jaw + lips say how loud the moment is
    loud = np.clip((acoustic[:, 0] / 0.7 + acoustic[:, 1] / 0.7) / 1.6, 0.0, 1.0)
    shapes = np.zeros((n, len(MOUTH_CONTROLS)))
    for phone, start, end in decoder.phones(pcm):
        a, b = int(round(start / HOP_S)), min(n, int(round(end / HOP_S)))
        shapes[a:b] = SHAPES.get(phone, _CONSONANT)
    opening = slice(0, 6)
    shapes[:, opening] *= loud[:, None] ** 0.7
    shapes[:, 6:] *= (loud > 0)[:, None] | (shapes[:, 6:] > 0)
    return _smooth(shapes, 0, n)
