"""The LivePortrait renderer: controls -> driving keypoints -> warp + decode of the resident source volume.

Per avatar (``prepare``): the appearance volume, the motion and the keypoints x_s of ``face.input_256``, once.
Per frame (``render``): the animation's expression and pose deltas on the source motion, the implicit-keypoint
transform, stitching (and, when enabled, eye retargeting for ``eyeBlink``), then the core's warp + decode.

On CUDA the heavy networks run in fp16 or bf16, the generator in channels-last, and warp + decode can be replayed
from a CUDA graph captured at batch 1 (``_GraphedWarpDecode``); none of that is touched on a CPU machine.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.animation.controls import side_values
from engine.animation.state import AnimationState
from engine.face.types import FaceCrop
from engine.liveportrait import LivePortrait
from engine.render.base import SourceState
from engine.render.liveportrait.motion_map import motion_delta

log = logging.getLogger(__name__)

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}
POSE = ("pitch", "yaw", "roll")


def resolve_device(device: str) -> torch.device:
    """"auto" is CUDA when a GPU is visible, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return dev


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype, str]:
    """(dtype, why). "auto" is fp16 on CUDA and fp32 on the CPU; half precision on the CPU falls back to fp32
    (slower there, and not what the equivalence was proven at)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16, "auto: fp16 on CUDA"
        return torch.float32, "auto: fp32 on CPU"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, fp32, fp16 or bf16, not {precision!r}")
    dtype = PRECISIONS[precision]
    if device.type != "cuda" and dtype != torch.float32:
        log.warning("precision %s asked for on %s: using fp32", precision, device)
        return torch.float32, f"{precision} needs CUDA; fp32 on CPU"
    return dtype, f"{precision} requested"


@dataclass(eq=False, kw_only=True)
class LivePortraitSource(SourceState):
    """What stays resident per avatar: the feature volume (1, 32, 16, 64, 64), the source motion, x_s, and the
    source's eye and lip openness (for retargeting)."""

    feature: torch.Tensor
    motion: dict[str, torch.Tensor]
    x_s: torch.Tensor  # (1, 21, 3) float32
    eye_ratio: np.ndarray = field(default_factory=lambda: np.zeros((1, 2), np.float32))  # (1, 2)
    lip_ratio: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), np.float32))  # (1, 1)


class _GraphedWarpDecode:
    """Warp + decode at batch 1 replayed from one CUDA graph: static inputs are copied in, the image copied out.

    Captured lazily on the first frame (a few warm-up runs on a side stream first, as CUDA graphs require).
    """

    def __init__(self, core: LivePortrait, feature_shape: tuple[int, ...]) -> None:
        dev, dt = core.device, core.dtype
        self.core = core
        self.feature = torch.zeros(feature_shape, device=dev, dtype=dt)
        self.x_s = torch.zeros(1, 21, 3, device=dev, dtype=torch.float32)
        self.x_d = torch.zeros(1, 21, 3, device=dev, dtype=torch.float32)
        side = torch.cuda.Stream(device=dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):
                core.warp_decode(self.feature, self.x_s, self.x_d)
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.image = core.warp_decode(self.feature, self.x_s, self.x_d)["image"]

    def __call__(self, feature: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        self.feature.copy_(feature)
        self.x_s.copy_(x_s)
        self.x_d.copy_(x_d)
        self.graph.replay()
        return self.image.clone()


class LivePortraitRenderer:
    """The Renderer for the LivePortrait network. Owned by one render worker; not thread-safe."""

    name = "liveportrait"
    prepares_anywhere = False  # source features are torch on the render thread's device

    def __init__(self, core: LivePortrait, models_dir: Path | None = None, precision_reason: str = "",
                 cuda_graphs: bool = False, channels_last: bool = False, eye_retargeting: bool = False) -> None:
        self.core = core
        self.models_dir = models_dir
        self.precision_reason = precision_reason
        self.channels_last = channels_last and core.device.type == "cuda"
        self.use_cuda_graphs = cuda_graphs and core.device.type == "cuda"
        self.eye_retargeting = eye_retargeting
        self._graphed: _GraphedWarpDecode | None = None
        # Our own CUDA stream: the engine's frames never queue behind other work on the default stream.
        self.stream = torch.cuda.Stream(core.device) if core.device.type == "cuda" else None
        if self.channels_last:
            # The generator's 2D convolutions are the bulk of a frame; cuDNN's NHWC kernels use tensor cores.
            core.generator.to(memory_format=torch.channels_last)

    @classmethod
    def load(cls, models_dir: Path, device: str = "auto", precision: str = "auto", cuda_graphs: bool = True,
             eye_retargeting: bool = False) -> LivePortraitRenderer:
        """Load the checkpoints of ``models_dir`` (official layout, strict). Raises ModelsMissing or WeightsInvalid.

        ``cuda_graphs`` and channels-last apply on CUDA only.
        """
        dev = resolve_device(device)
        dtype, why = resolve_precision(precision, dev)
        core = LivePortrait.from_dir(models_dir, device=dev, dtype=dtype)
        on_cuda = dev.type == "cuda"
        return cls(core, Path(models_dir), why, cuda_graphs=cuda_graphs and on_cuda, channels_last=on_cuda,
                   eye_retargeting=eye_retargeting)

    def info(self) -> dict[str, Any]:
        return {
            "renderer": self.name,
            "device": str(self.core.device),
            "dtype": str(self.core.dtype).removeprefix("torch."),
            "precision": self.precision_reason,
            "cuda_graphs": self.use_cuda_graphs,
            "channels_last": self.channels_last,
            "eye_retargeting": self.eye_retargeting,
            "models_dir": str(self.models_dir) if self.models_dir else None,
        }

    def _on_stream(self) -> contextlib.AbstractContextManager[Any]:
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    # ---------------------------------------------------------------- per avatar
    def prepare(self, face: FaceCrop) -> LivePortraitSource:
        """Encode the 256 network input once: feature volume, motion, keypoints."""
        with self._on_stream():
            enc = self.core.encode_source(face.input_256)
        return LivePortraitSource(
            face=face,
            feature=enc.feature,
            motion=enc.motion,
            x_s=enc.keypoints,
            eye_ratio=np.asarray(face.eye_ratio, np.float32).reshape(1, 2),
            lip_ratio=np.asarray(face.lip_ratio, np.float32).reshape(1, 1),
        )

    # ---------------------------------------------------------------- per frame
    def driving_keypoints(self, source: LivePortraitSource, state: AnimationState) -> torch.Tensor:
        """Controls -> x_d (1, 21, 3) after stitching (and eye retargeting when enabled)."""
        controls = dict(state.controls)
        blink = 0.0
        if self.eye_retargeting:
            # The network closes both eyes by one ratio: it takes the part both sides share; what one side closes
            # beyond that (a wink) stays on that side's keypoints.
            left, right = side_values(controls, "eyeBlink")
            blink = min(left, right)
            controls.update(eyeBlink=0.0, eyeBlinkLeft=left - blink, eyeBlinkRight=right - blink)
        delta = motion_delta(controls)
        dev = self.core.device
        motion = dict(source.motion)
        motion["exp"] = motion["exp"] + torch.from_numpy(delta.exp).to(dev).reshape(1, -1, 3)
        for name, value in zip(POSE, (delta.pitch, delta.yaw, delta.roll), strict=True):
            motion[name] = motion[name] + float(value)
        x_d = self.core.transform_keypoints(motion)
        if self.eye_retargeting and blink > 0.0:
            x_d = x_d + self.core.retarget_eye(source.x_s, self.eye_target(source, blink))
        return self.core.stitch(source.x_s, x_d)

    @staticmethod
    def eye_target(source: LivePortraitSource, blink: float) -> torch.Tensor:
        """The eye network's input (1, 3): the source's two eye openness values and the wanted openness."""
        open_ratio = float(source.eye_ratio.mean())
        wanted = open_ratio * (1.0 - min(max(blink, 0.0), 1.0))
        return torch.tensor([[*source.eye_ratio.reshape(2).tolist(), wanted]], dtype=torch.float32)

    @torch.inference_mode()
    def render(self, source: SourceState, state: AnimationState) -> np.ndarray:
        """A (512, 512, 3) uint8 RGB crop in the source crop's space."""
        if not isinstance(source, LivePortraitSource):
            raise TypeError(f"LivePortraitRenderer.render needs a LivePortraitSource, got {type(source).__name__}")
        with self._on_stream():
            x_d = self.driving_keypoints(source, state)
            if self.use_cuda_graphs:
                if self._graphed is None:
                    self._graphed = _GraphedWarpDecode(self.core, tuple(source.feature.shape))
                image = self._graphed(source.feature, source.x_s, x_d)
            else:
                image = self.core.warp_decode(source.feature, source.x_s, x_d)["image"]
            return to_uint8(image)  # the copy to the host waits for this stream only


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8, truncating as the reference's ``parse_output`` does."""
    hwc = image[0].detach().float().clamp_(0, 1).mul_(255).permute(1, 2, 0)
    return np.ascontiguousarray(hwc.to(torch.uint8).cpu().numpy())
