"""Put a rendered face crop back into the full photo through the inverse crop transform, with a feathered mask.

The reference warps the whole 512 output and blends over the whole frame, and calls that slow. Here everything that
depends only on the source is done once per avatar: the feathered mask (generated, 16 px linear ramp like the
reference's mask_template.png) is warped to the photo once, and only its bounding box is warped and blended per
frame. Outside the box the photo is untouched, exactly as in the reference (its mask is 0 there).
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.face.types import FaceCrop

CROP_SIZE = 512
FEATHER_PX = 16


def feather_mask(size: int = CROP_SIZE, feather: int = FEATHER_PX) -> np.ndarray:
    """(size, size) uint8: 255 inside, a linear ramp over ``feather`` px at every edge, rounded corners.

    Each axis follows the reference template: floor(255 * min(x, feather) / feather) from the left or top and
    min(size - x, feather) towards the right or bottom; the corners are the product of the two ramps.
    """
    x = np.arange(size, dtype=np.float64)
    ramp = np.minimum(np.minimum(x, size - x), feather) / feather
    return np.floor(255.0 * np.outer(ramp, ramp)).astype(np.uint8)


class PasteBack:
    """Built once per avatar from its FaceCrop; ``apply`` is the per-frame call."""

    def __init__(self, face: FaceCrop, feather: int = FEATHER_PX) -> None:
        self._build(face.image, face.M_c2o, feather)

    @classmethod
    def onto(cls, image: np.ndarray, m_c2o: np.ndarray, feather: int = FEATHER_PX) -> PasteBack:
        """A paste-back onto another picture of the photo: ``m_c2o`` maps crop pixels into ``image`` (a framed
        region of the photo, resized: engine/framing.py). The mask's feather scales with the map."""
        paste = cls.__new__(cls)
        paste._build(image, m_c2o, feather)
        return paste

    def _build(self, image: np.ndarray, m_c2o: np.ndarray, feather: int) -> None:
        self.image = image
        h, w = image.shape[:2]
        self.m_c2o = np.asarray(m_c2o, dtype=np.float64)
        # the box, in the photo, of the 512 square's image (one pixel of slack for bilinear sampling)
        corners = np.array([[0, 0], [CROP_SIZE, 0], [0, CROP_SIZE], [CROP_SIZE, CROP_SIZE]], np.float64)
        mapped = corners @ self.m_c2o[:2, :2].T + self.m_c2o[:2, 2]
        x0, y0 = (max(0, int(np.floor(v)) - 1) for v in mapped.min(axis=0))
        x1, y1 = min(w, int(np.ceil(mapped[:, 0].max())) + 1), min(h, int(np.ceil(mapped[:, 1].max())) + 1)
        self._maps: dict[int, np.ndarray] = {}
        if x1 <= x0 or y1 <= y0:  # the crop lies wholly outside the photo: nothing to blend
            self.bbox = (0, 0, 0, 0)
            self._weight = self._keep = np.zeros((0, 0), np.float32)
            self._region = np.zeros((0, 0, 3), np.uint8)
            return
        self.bbox = (x0, y0, x1, y1)  # where blending happens: x0 <= x < x1, y0 <= y < y1
        mask = cv2.warpAffine(feather_mask(CROP_SIZE, feather), self._map_for(CROP_SIZE), (x1 - x0, y1 - y0),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        self._weight = mask.astype(np.float32) / 255.0  # m: the render's share
        self._keep = 1.0 - self._weight  # 1 - m: the photo's share
        self._region = np.ascontiguousarray(image[y0:y1, x0:x1])

    @property
    def nbytes(self) -> int:
        """Resident size of what is kept per avatar (the photo itself is shared with the FaceCrop)."""
        return self._weight.nbytes + self._keep.nbytes + self._region.nbytes

    def _map_for(self, size: int) -> np.ndarray:
        """2x3 map from a size x size crop to the bbox region (a 256 crop is a 512 crop scaled by 2)."""
        if size not in self._maps:
            x0, y0 = self.bbox[:2]
            m = np.diag([CROP_SIZE / size, CROP_SIZE / size, 1.0])
            shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
            self._maps[size] = (shift @ self.m_c2o @ m)[:2]
        return self._maps[size]

    def blend_region(self, crop_rgb: np.ndarray) -> np.ndarray:
        """The bbox region of the pasted frame, (y1 - y0, x1 - x0, 3) uint8."""
        if crop_rgb.ndim != 3 or crop_rgb.shape[0] != crop_rgb.shape[1] or crop_rgb.shape[2] != 3:
            raise ValueError(f"paste-back needs a square (N, N, 3) RGB crop, not {crop_rgb.shape}")
        x0, y0, x1, y1 = self.bbox
        if x1 <= x0:
            return np.zeros((0, 0, 3), np.uint8)
        warped = cv2.warpAffine(crop_rgb, self._map_for(crop_rgb.shape[0]), (x1 - x0, y1 - y0),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        # m * render + (1 - m) * photo, rounded, in one multithreaded pass (3x faster than the numpy expression)
        return cv2.blendLinear(warped, self._region, self._weight, self._keep)

    def apply(self, crop_rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The full photo (H, W, 3) uint8 with the crop blended in; a photo-sized ``out`` buffer is reused if given."""
        if out is None:
            out = self.image.copy()
        else:
            np.copyto(out, self.image)
        x0, y0, x1, y1 = self.bbox
        out[y0:y1, x0:x1] = self.blend_region(crop_rgb)
        return out
