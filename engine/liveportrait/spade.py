"""G, the SPADE generator: the warped 256x64x64 feature map -> a 512x512 RGB image.

Every residual block is normalised by SPADE (instance norm modulated per pixel by convolutions of the warped
features themselves) and its convolutions carry spectral norm. Spectral norm is a training device: at load time
``fold_spectral_norm`` divides each ``weight_orig`` by its stored sigma once, so a frame never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SpadeConfig:
    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64
    hidden: int = 128  # SPADE's shared MLP width


class SpectralConv2d(nn.Module):
    """A Conv2d stored as the checkpoints store a spectrally normalised one (weight_orig, weight_u, weight_v).

    The effective weight is ``weight_orig / sigma`` with ``sigma = u . (W v)`` from the stored vectors (what
    torch's spectral_norm computes in eval mode). It is computed once by ``fold()``, not per call.
    """

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True) -> None:
        super().__init__()
        self.padding = kernel // 2
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.register_buffer("weight_u", torch.empty(cout))
        self.register_buffer("weight_v", torch.empty(cin * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("weight", torch.empty(0), persistent=False)

    def fold(self) -> None:
        w = self.weight_orig.detach()
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        self.weight = w / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class Spade(nn.Module):
    """Parameter-free instance norm, then a per-pixel scale and shift predicted from the segmentation map."""

    def __init__(self, channels: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        self.channels = channels
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SpadeResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        mid = min(cin, cout)
        self.learned_shortcut = cin != cout
        self.conv_0 = SpectralConv2d(cin, mid, 3)
        self.conv_1 = SpectralConv2d(mid, cout, 3)
        self.norm_0 = Spade(cin, label_channels, hidden)
        self.norm_1 = Spade(mid, label_channels, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralConv2d(cin, cout, 1, bias=False)
            self.norm_s = Spade(cin, label_channels, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class SpadeGenerator(nn.Module):
    def __init__(self, cfg: SpadeConfig = SpadeConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        cin = min(cfg.max_features, cfg.block_expansion * 2**cfg.num_down_blocks)  # 256
        wide = 2 * cin
        self.fc = nn.Conv2d(cin, wide, 3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SpadeResBlock(wide, wide, cin, cfg.hidden))
        self.up_0 = SpadeResBlock(wide, cin, cin, cfg.hidden)
        self.up_1 = SpadeResBlock(cin, cfg.out_channels, cin, cfg.hidden)
        self.conv_img = nn.Sequential(
            nn.Conv2d(cfg.out_channels, 3 * cfg.upscale**2, 3, padding=1), nn.PixelShuffle(cfg.upscale)
        )

    def fold_spectral_norm(self) -> None:
        for m in self.modules():
            if isinstance(m, SpectralConv2d):
                m.fold()

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """feature (B, 256, 64, 64) -> image (B, 3, 512, 512) in [0, 1]."""
        seg = feature
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))
