"""Which renderer draws the face: LivePortrait when its weights load and it is fast enough here, else offline.

``auto`` never fails for want of weights: it falls back and says why (the log, /health and every reply carry the
renderer's name). It also measures: at warm-up one frame is drawn and timed, and LivePortrait stays only if that
frame fits the stream budget (1 / default fps); on a CPU it takes seconds, so ``auto`` draws with the offline
renderer there (``fits_stream_budget``). ``liveportrait`` keeps it regardless (stills on a CPU) and fails loudly
without weights; ``offline`` skips loading the network. Without the checkpoint files ``auto`` falls back after a look
at the folder, before torch is imported (an offline start is seconds shorter and never holds torch in memory).
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.errors import ModelsMissing, WeightsInvalid
from engine.models.layout import require_liveportrait
from engine.render.base import Renderer

log = logging.getLogger(__name__)

MODES = ("auto", "liveportrait", "offline")


def select_renderer(mode: str, models_dir: Path, device: str = "auto", precision: str = "auto") -> tuple[Renderer, str]:
    """(renderer, reason). Raises ModelsMissing / WeightsInvalid only when ``liveportrait`` is asked for."""
    if mode not in MODES:
        raise ValueError(f"renderer must be one of {', '.join(MODES)}, not {mode!r}")
    if mode in ("auto", "liveportrait"):
        try:
            require_liveportrait(models_dir)  # no files: no torch import, no network built
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


def fits_stream_budget(frame_ms: float, fps: float) -> tuple[bool, str]:
    """Whether a measured warm-up frame fits one stream period, and the reason in words for the log and /health."""
    budget_ms = 1000.0 / fps
    if frame_ms <= budget_ms:
        return True, f"a LivePortrait frame took {frame_ms:.0f} ms at warm-up, within the {budget_ms:.0f} ms budget"
    return False, (f"a LivePortrait frame took {frame_ms:.0f} ms at warm-up, over the {budget_ms:.0f} ms stream budget "
                   f"(1 / {fps:g} fps): using the offline renderer (--renderer liveportrait keeps LivePortrait)")
