"""F, the appearance feature extractor: a 256x256 source image -> a 32x16x64x64 feature volume."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.liveportrait.blocks import ConvNormAct2d, PreActResBlock3d


@dataclass(frozen=True)
class AppearanceConfig:
    image_channels: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    reshape_channels: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


class AppearanceFeatureExtractor(nn.Module):
    def __init__(self, cfg: AppearanceConfig = AppearanceConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.first = ConvNormAct2d(cfg.image_channels, cfg.block_expansion)
        widths = [min(cfg.max_features, cfg.block_expansion * 2**i) for i in range(cfg.num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(
            ConvNormAct2d(widths[i], widths[i + 1], pool=True) for i in range(cfg.num_down_blocks)
        )
        self.second = nn.Conv2d(widths[-1], cfg.max_features, 1)
        self.resblocks_3d = nn.Sequential()
        for i in range(cfg.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", PreActResBlock3d(cfg.reshape_channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, 256, 256) in [0, 1] -> (B, 32, 16, 64, 64)."""
        x = self.first(image)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        b, _, h, w = x.shape
        volume = x.view(b, self.cfg.reshape_channels, self.cfg.reshape_depth, h, w)
        return self.resblocks_3d(volume)
