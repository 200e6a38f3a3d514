"""Building blocks shared by the LivePortrait networks.

Attribute names (``conv``, ``norm``, ...) are the official checkpoints' key names; the blocks themselves are ours.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def folded_conv_norm(conv: nn.Module, norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """conv followed by an eval-mode BatchNorm as one conv: (weight, bias), computed in float64, in conv's dtype."""
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    weight = conv.weight.double() * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    bias = (bias - norm.running_mean.double()) * scale + norm.bias.double()
    dtype = conv.weight.dtype
    return weight.to(dtype).contiguous(), bias.to(dtype)


class FoldableConvNorm(nn.Module):
    """A conv + BatchNorm pair that, after ``fold_norm()`` (eval only, at load), runs as a single convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.folded: tuple[torch.Tensor, torch.Tensor] | None = None
        self.fast: Callable[[torch.Tensor], torch.Tensor] | None = None  # same conv, fewer multiply-adds

    def conv_and_norm(self) -> tuple[nn.Module, nn.modules.batchnorm._BatchNorm]:
        return self.conv, self.norm

    def fold_norm(self) -> None:
        self.folded = folded_conv_norm(*self.conv_and_norm())
        self.fast = None

    def conv_norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast is not None:
            return self.fast(x)
        conv, norm = self.conv_and_norm()
        if self.folded is None:
            return norm(conv(x))
        op = F.conv3d if x.dim() == 5 else F.conv2d
        return op(x, *self.folded, padding=conv.padding)


def fold_batchnorms(module: nn.Module) -> None:
    """Fold every conv + BatchNorm pair of ``module`` (call after its final ``.to(device, dtype)``)."""
    for m in module.modules():
        if isinstance(m, FoldableConvNorm):
            m.fold_norm()


class ConvNormAct2d(FoldableConvNorm):
    """conv -> BatchNorm -> ReLU (or LeakyReLU 0.01), optionally followed by a 2x2 average pool."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, leaky: bool = False, pool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.norm = nn.BatchNorm2d(cout)
        self.leaky = leaky
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_norm(x)
        x = F.leaky_relu_(x) if self.leaky else F.relu_(x)
        return F.avg_pool2d(x, 2) if self.pool else x


class ConvNormAct3d(FoldableConvNorm):
    """3D conv -> BatchNorm -> ReLU, with an optional spatial (not depth) down- or upsampling by 2."""

    def __init__(self, cin: int, cout: int, resample: str | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout)
        self.resample = resample  # None, "down" (pool after) or "up" (nearest before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        x = F.relu_(self.conv_norm(x))
        if self.resample == "down":
            x = F.avg_pool3d(x, (1, 2, 2))
        return x


class PreActResBlock3d(nn.Module):
    """BN -> ReLU -> conv, twice, plus the identity: the appearance extractor's 3D residual block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm3d(channels)
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm2 = nn.BatchNorm3d(channels)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.norm1(x)))
        y = self.conv2(F.relu(self.norm2(y)))
        return x + y


def coordinate_grid(depth: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(d, h, w, 3) grid of normalised (x, y, z) in [-1, 1]: x to the right, y down, z inwards.

    Corner-aligned (-1 and 1 are the first and last sample centres), as the keypoints are.
    """

    def axis(n: int) -> torch.Tensor:
        return torch.arange(n, dtype=like.dtype, device=like.device) / (n - 1) * 2 - 1

    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], dim=-1)
