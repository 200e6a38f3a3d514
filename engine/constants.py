"""The protocol's words and ranges that both sides know, with no heavy imports (stdlib + engine.errors only).

Why a module of its own: the bridge and the client check a request before a round trip (an unknown expression, an
intensity out of range, a clip too long) and must refuse exactly as the engine does, but importing the engine's
animation or speech packages for a tuple of names would load numpy and the whole animation stack into the bridge.
engine/animation/presets.py and engine/protocol.py re-export these names; the values are owned here.
"""

from __future__ import annotations

import math
import numbers

from engine.errors import BadRequest

PROTOCOL_VERSION = 1
FRAME_TOPIC = b"frame."  # PUB topic prefix: frame.<avatar id>
AUDIO_TOPIC = b"audio."  # PUB topic prefix: audio.<avatar id> (the speech audio as heard)

# Expression presets (their weights live in engine/animation/presets.py, which checks it has exactly these).
EXPRESSIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprised")

# The intensity range: validate_intensity checks it and the `expressions` replies (engine and bridge) publish it,
# so a client's slider and the check cannot disagree.
INTENSITY_MIN = 0.0
INTENSITY_MAX = 1.0
INTENSITY_RANGE: dict[str, float] = {"min": INTENSITY_MIN, "max": INTENSITY_MAX}

AUDIO_FORMATS = ("wav", "pcm_s16le", "pcm_f32le")
MAX_AUDIO_SECONDS = 60.0  # one message; longer speech is sent in chunks with append
MIN_CLIP_FPS = 1.0
MAX_CLIP_FPS = 60.0

# A stream's framing (the `stream` command's `framing`, `width`, `height`; engine/framing.py draws it): the whole
# photo, a head-and-shoulders frame around the face, or the aligned face crop, at width x height pixels.
FRAMINGS = ("full", "head", "face")
FRAME_SIDE_MIN, FRAME_SIDE_MAX = 64, 1920  # even sides only (video encoders want them)
DEFAULT_FRAMED_SIDE = 512  # head and face without a size: 512 x 512


def validate_expression(expression: object) -> str:
    if not isinstance(expression, str) or expression not in EXPRESSIONS:
        raise BadRequest(f"unknown expression {expression!r}; known expressions: {', '.join(EXPRESSIONS)}")
    return expression


def validate_intensity(intensity: object) -> float:
    if isinstance(intensity, bool) or not isinstance(intensity, numbers.Real):
        raise BadRequest(f"intensity must be a number in {INTENSITY_MIN:g}..{INTENSITY_MAX:g}, "
                         f"got {type(intensity).__name__}")
    value = float(intensity)
    if not math.isfinite(value) or not INTENSITY_MIN <= value <= INTENSITY_MAX:
        raise BadRequest(f"intensity is {value:g}, outside its range {INTENSITY_MIN:g}..{INTENSITY_MAX:g}")
    return value + 0.0
