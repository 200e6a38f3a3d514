"""The renderer interface: the one seam between the engine and whatever draws the face."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engine.animation.state import AnimationState
from engine.face.types import FaceCrop


@dataclass
class SourceState:
    """What a renderer keeps resident per avatar. Renderers subclass it with their own fields."""

    face: FaceCrop


class Renderer(Protocol):
    """Draws an animated face crop. Owned by one render worker thread; never touches sockets or JPEG."""

    name: str  # "liveportrait" | "offline"
    # True when ``prepare`` needs nothing the render thread owns (no torch, no GPU): the engine then runs it in the
    # prep process with detection (engine/prep.py), so a new avatar never holds the render thread (offline: ~0.6 s).
    prepares_anywhere: bool

    def prepare(self, face: FaceCrop) -> SourceState:
        """Once per avatar (may be slow): everything that depends only on the source."""
        ...

    def render(self, source: SourceState, state: AnimationState) -> np.ndarray:
        """Per frame: a (512, 512, 3) uint8 RGB crop in the source crop's space."""
        ...

    def info(self) -> dict[str, Any]:
        """Facts for /health: device, dtype, why this renderer was chosen."""
        ...
