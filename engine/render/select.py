"""Which renderer draws the face: LivePortrait when its weights load, else the offline CPU renderer.

``auto`` never fails for want of weights: it falls back and says why (the log, /health and every reply carry the
renderer's name). ``liveportrait`` fails loudly instead; ``offline`` skips loading the network.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.errors import ModelsMissing, WeightsInvalid
from engine.render.base import Renderer

log = logging.getLogger(__name__)

MODES = ("auto", "liveportrait", "offline")


def select_renderer(mode: str, models_dir: Path, device: str = "auto", precision: str = "auto") -> tuple[Renderer, str]:
    """(renderer, reason). Raises ModelsMissing / WeightsInvalid only when ``liveportrait`` is asked for."""
    if mode not in MODES:
        raise ValueError(f"renderer must be one of {', '.join(MODES)}, not {mode!r}")
    if mode in ("auto", "liveportrait"):
        try:
            from engine.render.liveportrait import LivePortraitRenderer

            renderer = LivePortraitRenderer.load(models_dir, device=device, precision=precision)
            return renderer, f"LivePortrait weights loaded from {models_dir}"
        except (ModelsMissing, WeightsInvalid) as exc:
            if mode == "liveportrait":
                raise
            reason = f"LivePortrait unavailable ({exc.code}: {exc}); using the offline renderer"
            log.warning(reason)
    else:
        reason = "offline renderer requested"
    from engine.render.offline import OfflineRenderer

    return OfflineRenderer(), reason
