"""The LivePortrait core: the five networks and the keypoint maths behind one small API.

Per avatar: ``encode_source`` (appearance volume, motion, keypoints) once. Per frame: ``transform_keypoints``,
``stitch`` and ``warp_decode`` only. The API is also what ``shared/reference/check_core.py`` calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.liveportrait import keypoints
from engine.liveportrait.appearance import AppearanceFeatureExtractor
from engine.liveportrait.blocks import fold_batchnorms
from engine.liveportrait.motion import MotionExtractor
from engine.liveportrait.spade import SpadeGenerator
from engine.liveportrait.stitching import EYE, LIP, STITCHING, KeypointMLP
from engine.liveportrait.warping import WarpingNetwork
from engine.liveportrait.weights import load_file, load_stitching
from engine.models import layout

log = logging.getLogger(__name__)


@dataclass
class SourceEncoding:
    """Everything per-frame work needs from the source image, resident on the core's device."""

    feature: torch.Tensor  # (1, 32, 16, 64, 64), network dtype
    motion: dict[str, torch.Tensor]  # pitch, yaw, roll (1, 1) degrees; t (1, 3); exp, kp (1, 21, 3); scale (1, 1)
    keypoints: torch.Tensor  # x_s (1, 21, 3) float32


class LivePortrait:
    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 fast_convs: bool = True) -> None:
        self.device = torch.device(device)
        # CPU only: Winograd / DFT convolutions (fastconv.py), ~1.6x faster warp + decode for ~0.85 GB more memory
        self.fast_convs = fast_convs and self.device.type == "cpu"
        self.dtype = dtype  # of the heavy networks; keypoint maths and the MLPs stay float32
        self.appearance = AppearanceFeatureExtractor()
        self.motion = MotionExtractor()
        self.warping = WarpingNetwork()
        self.generator = SpadeGenerator()
        self.mlps = {"stitching": KeypointMLP(STITCHING), "lip": KeypointMLP(LIP), "eye": KeypointMLP(EYE)}

    @classmethod
    def from_dir(cls, models_dir: str | Path, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, fast_convs: bool = True) -> LivePortrait:
        """Load the official checkpoints from a models folder in the HuggingFace layout (strict)."""
        root = Path(models_dir)
        layout.require_liveportrait(root)  # a missing file is known before the networks are built (seconds)
        lp = cls(device, dtype, fast_convs)
        load_file(lp.appearance, root / layout.APPEARANCE)
        load_file(lp.motion, root / layout.MOTION)
        load_file(lp.warping, root / layout.WARPING)
        load_file(lp.generator, root / layout.SPADE)
        load_stitching(lp.mlps, root / layout.STITCHING)
        lp._prepare()
        return lp

    def _prepare(self) -> None:
        for net in (self.appearance, self.motion, self.warping, self.generator):
            net.eval().to(self.device, self.dtype)
            net.requires_grad_(False)
        for mlp in self.mlps.values():
            mlp.eval().to(self.device, torch.float32).requires_grad_(False)
        for net in (self.appearance, self.warping):
            fold_batchnorms(net)
        # The derived per-frame weights (spectral norm, fused convolutions) must see the final dtype and device.
        self.generator.fold_spectral_norm()
        if self.fast_convs:  # fewer multiply-adds; on CUDA cuDNN's own algorithms win
            self.warping.use_fast_convs()
            self.generator.use_fast_convs()

    # -- per avatar ---------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_source(self, image: np.ndarray) -> SourceEncoding:
        """image: (256, 256, 3) uint8 RGB, the network input crop."""
        if image.shape != (256, 256, 3) or image.dtype != np.uint8:
            raise ValueError(f"expected a (256, 256, 3) uint8 image, got {image.shape} {image.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        x = (x.permute(2, 0, 1)[None].float() / 255.0).clamp(0, 1).to(self.dtype)
        feature = self.appearance(x)
        raw = {k: v.float() for k, v in self.motion(x).items()}
        motion = keypoints.refine(raw)
        return SourceEncoding(feature=feature, motion=motion, keypoints=keypoints.transform(motion))

    # -- per frame ----------------------------------------------------------------------------------------
    def transform_keypoints(self, motion: dict[str, torch.Tensor]) -> torch.Tensor:
        return keypoints.transform({k: v.to(self.device, torch.float32) for k, v in motion.items()})

    @torch.inference_mode()
    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """Driving keypoints corrected so the animated crop pastes back without seams: delta on all 63 coordinates
        plus tx, ty on x and y."""
        x_s, x_d = (t.to(self.device, torch.float32) for t in (x_s, x_d))
        delta = self.mlps["stitching"](keypoints.mlp_input(x_s, x_d))
        b, k = x_d.shape[:2]
        out = x_d + delta[:, : 3 * k].reshape(b, k, 3)
        shift = torch.zeros_like(out[:, :1])
        shift[..., :2] = delta[:, 3 * k : 3 * k + 2].reshape(b, 1, 2)
        return out + shift

    @torch.inference_mode()
    def retarget_eye(self, x_s: torch.Tensor, eye_ratio: torch.Tensor) -> torch.Tensor:
        """eye_ratio (B, 3): source eye A, eye B, target openness -> keypoint delta (B, 21, 3)."""
        x_s = x_s.to(self.device, torch.float32)
        delta = self.mlps["eye"](keypoints.mlp_input(x_s, eye_ratio.to(self.device, torch.float32)))
        return delta.reshape(x_s.shape)

    @torch.inference_mode()
    def retarget_lip(self, x_s: torch.Tensor, lip_ratio: torch.Tensor) -> torch.Tensor:
        """lip_ratio (B, 2): source lip, target openness -> keypoint delta (B, 21, 3)."""
        x_s = x_s.to(self.device, torch.float32)
        delta = self.mlps["lip"](keypoints.mlp_input(x_s, lip_ratio.to(self.device, torch.float32)))
        return delta.reshape(x_s.shape)

    @torch.inference_mode()
    def warp_decode(self, feature: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor) -> dict[str, torch.Tensor]:
        """Warp the source volume from x_s to x_d and decode: warped (B, 256, 64, 64), occlusion (B, 1, 64, 64),
        image (B, 3, 512, 512) in [0, 1]."""
        feature = feature.to(self.device, self.dtype)
        x_s, x_d = (t.to(self.device, self.dtype) for t in (x_s, x_d))
        warped, occlusion = self.warping(feature, x_s, x_d)
        image = self.generator(warped)
        return {"warped": warped, "occlusion": occlusion, "image": image}
