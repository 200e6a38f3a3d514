"""The LivePortrait renderer and its control mapping: the only place that knows LivePortrait's motion space.

``renderer`` runs the networks; ``motion_map`` turns the animation's controls into expression-keypoint deltas and
head pose; ``basis`` is the generated table (tools/derive_motion_basis.py) the map reads.
"""

from engine.render.liveportrait.renderer import (
    PRECISIONS,
    LivePortraitRenderer,
    LivePortraitSource,
    _GraphedWarpDecode,
    resolve_device,
    resolve_precision,
    to_uint8,
)

__all__ = [
    "PRECISIONS", "LivePortraitRenderer", "LivePortraitSource", "_GraphedWarpDecode", "resolve_device",
    "resolve_precision", "to_uint8",
]
