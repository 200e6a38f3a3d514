"""A stream's framing: what part of the photo its frames show, at what size (the `stream` command's ``framing``,
``width``, ``height``; engine/protocol.py checks them, docs/protocol.md "Framing").

- ``full`` unsized: the engine's ``--output`` as before (the whole photo, or the crop), not handled here.
- ``full`` sized: the largest region of the photo with the frame's aspect, centred on the face where it can be.
- ``head``: a head-and-shoulders region around the face (HEAD_SPAN crop sides tall, the head HEAD_TOP down).
- ``face``: the renderer's aligned face crop, cut to the frame's aspect and resized.

A framed region is cheaper per frame than the whole photo: the region of the photo is cut and resized to the frame
once per (avatar, framing) (a ``View``), and each frame pastes the rendered face straight onto a copy of that
(``PasteBack.onto`` with the crop-to-frame map), so only the frame's pixels are copied, blended and JPEG-encoded.
A region smaller than the frame (a small photo, a large frame) is pasted at the photo's scale and resized after,
so the blend never covers more pixels than the photo's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.face.pasteback import CROP_SIZE, PasteBack
from engine.protocol import Framing

HEAD_SPAN = 1.3  # a head-and-shoulders frame is this many aligned-crop sides tall (the crop is ~2.3 faces wide)
HEAD_TOP = 0.4  # ... with the crop's centre (the head's) this far down the frame
MAX_VIEWS = 4  # framed views kept per avatar (a transport asks for one or two)


@dataclass(frozen=True)
class Region:
    """A box of the photo, x0 <= x < x1, y0 <= y < y1 (integer pixels)."""

    x0: int
    y0: int
    x1: int
    y1: int


def face_region(paste: PasteBack, framing: Framing) -> Region:
    """The photo box a ``head`` or sized ``full`` framing shows: the frame's aspect, around the face, inside the
    photo (shifted in, then shrunk if the photo is smaller than the box)."""
    assert framing.width is not None and framing.height is not None
    h, w = paste.image.shape[:2]
    m = paste.m_c2o
    cx, cy = m[:2, :2] @ np.array([CROP_SIZE / 2, CROP_SIZE / 2]) + m[:2, 2]  # the crop's centre: the head's
    side = CROP_SIZE * float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))  # the crop's side in photo pixels
    aspect = framing.width / framing.height
    box_h = HEAD_SPAN * side if framing.kind == "head" else float(h)
    box_w = box_h * aspect
    shrink = min(1.0, w / box_w, h / box_h)
    box_w, box_h = box_w * shrink, box_h * shrink
    top = HEAD_TOP if framing.kind == "head" else 0.5
    x0 = min(max(cx - box_w / 2, 0.0), w - box_w)
    y0 = min(max(cy - top * box_h, 0.0), h - box_h)
    x0i, y0i = int(round(x0)), int(round(y0))
    return Region(x0i, y0i, min(w, x0i + max(2, int(round(box_w)))), min(h, y0i + max(2, int(round(box_h)))))


def region_map(region: Region, width: int, height: int) -> np.ndarray:
    """3x3: photo pixels -> frame pixels for ``region`` resized to width x height (pixel centres, as cv2.resize)."""
    kx, ky = width / (region.x1 - region.x0), height / (region.y1 - region.y0)
    return np.array([[kx, 0.0, (0.5 - region.x0) * kx - 0.5],
                     [0.0, ky, (0.5 - region.y0) * ky - 0.5],
                     [0.0, 0.0, 1.0]])


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bilinear when growing."""
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


@dataclass(frozen=True)
class View:
    """One avatar's paste-back for one framing: onto the frame itself when the region shrinks (fewer pixels to
    blend than in the photo), or onto the region at the photo's own scale, then resized, when it grows (a framed
    face larger than in the photo would cost more to blend than the whole photo)."""

    paste: PasteBack
    size: tuple[int, int] | None  # (width, height) to resize the pasted region to; None: pasted at frame size

    def apply(self, crop: np.ndarray) -> np.ndarray:
        frame = self.paste.apply(crop)
        return frame if self.size is None else resize(frame, *self.size)

    @property
    def nbytes(self) -> int:
        return self.paste.nbytes + self.paste.image.nbytes


def view(paste: PasteBack, framing: Framing) -> View:
    """The avatar's view for ``framing`` (built once per avatar and framing: the region's cut or resize and the
    mask's warp)."""
    assert framing.width is not None and framing.height is not None
    region = face_region(paste, framing)
    cut = np.ascontiguousarray(paste.image[region.y0:region.y1, region.x0:region.x1])
    if framing.width * framing.height > cut.shape[0] * cut.shape[1]:  # growing: paste first, resize after
        shift = np.array([[1.0, 0.0, -region.x0], [0.0, 1.0, -region.y0], [0.0, 0.0, 1.0]])
        return View(PasteBack.onto(cut, shift @ paste.m_c2o), (framing.width, framing.height))
    background = resize(cut, framing.width, framing.height)
    return View(PasteBack.onto(background, region_map(region, framing.width, framing.height) @ paste.m_c2o), None)


def face_frame(crop: np.ndarray, width: int, height: int) -> np.ndarray:
    """The aligned face crop cut to width:height around its centre, then resized to width x height."""
    side = crop.shape[0]
    if width >= height:
        cut_w, cut_h = side, max(2, round(side * height / width))
    else:
        cut_w, cut_h = max(2, round(side * width / height)), side
    x0, y0 = (side - cut_w) // 2, (side - cut_h) // 2
    return resize(np.ascontiguousarray(crop[y0:y0 + cut_h, x0:x0 + cut_w]), width, height)


class Views:
    """One avatar's framed views, made on first use by the render thread (the only thread that draws)."""

    def __init__(self) -> None:
        self._views: dict[Framing, View] = {}

    def get(self, paste: PasteBack, framing: Framing) -> View:
        found = self._views.get(framing)
        if found is None:
            if len(self._views) >= MAX_VIEWS:
                self._views.pop(next(iter(self._views)))  # the oldest: streams rarely change framing
            found = self._views[framing] = view(paste, framing)
        return found

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in list(self._views.values()))


def draw_framed(paste: PasteBack, views: Views, crop: np.ndarray, framing: Framing) -> np.ndarray:
    """Render thread: the frame a reframing ``framing`` shows, from the renderer's crop."""
    assert framing.width is not None and framing.height is not None
    if framing.kind == "face":
        return face_frame(crop, framing.width, framing.height)
    return views.get(paste, framing).apply(crop)
