"""W, the warping module: sparse keypoint motion -> a dense 3D flow and an occlusion map, then the source
feature volume warped by that flow and flattened to a 256x64x64 feature map for the generator.

The dense motion network follows the paper (and face-vid2vid): every keypoint k proposes the flow
``grid - x_d[k] + x_s[k]`` (plus one identity proposal for the background); an hourglass over the features
warped by each proposal, and gaussian heatmaps of the keypoints, predicts a softmax mask that mixes the proposals.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.liveportrait.blocks import ConvNormAct2d, ConvNormAct3d, FoldableConvNorm, coordinate_grid
from engine.liveportrait.fastconv import FourierConv3d, WinogradConv

KP_VARIANCE = 0.01


@dataclass(frozen=True)
class WarpingConfig:
    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channels: int = 32
    # dense motion network
    motion_block_expansion: int = 32
    motion_max_features: int = 1024
    motion_num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4


class HourglassEncoder(nn.Module):
    def __init__(self, cin: int, widths: list[int]) -> None:
        super().__init__()
        ins = [cin, *widths[:-1]]
        self.down_blocks = nn.ModuleList(ConvNormAct3d(i, o, "down") for i, o in zip(ins, widths, strict=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = [x]
        for block in self.down_blocks:
            skips.append(block(skips[-1]))
        return skips


class HourglassDecoder(FoldableConvNorm):
    def __init__(self, cin: int, widths: list[int], expansion: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(len(widths))):
            skip_in = widths[i] if i == len(widths) - 1 else 2 * widths[i]
            out = widths[i - 1] if i > 0 else expansion
            blocks.append(ConvNormAct3d(skip_in, out, "up"))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_channels = expansion + cin
        self.conv = nn.Conv3d(self.out_channels, self.out_channels, 3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_channels)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1]), strict=True):
            x = torch.cat([block(x), skip], dim=1)
        return F.relu_(self.conv_norm(x))


class Hourglass(nn.Module):
    def __init__(self, cin: int, expansion: int, max_features: int, num_blocks: int) -> None:
        super().__init__()
        widths = [min(max_features, expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        self.encoder = HourglassEncoder(cin, widths)
        self.decoder = HourglassDecoder(cin, widths, expansion)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def keypoint_heatmaps(grid: torch.Tensor, kp: torch.Tensor) -> torch.Tensor:
    """Gaussian blobs of the keypoints on the grid: (B, K, 3) -> (B, K, d, h, w)."""
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / KP_VARIANCE)


class DenseMotionNetwork(FoldableConvNorm):
    def __init__(self, cfg: WarpingConfig) -> None:
        super().__init__()
        k = cfg.num_kp
        self.num_kp = k
        self.compress = nn.Conv3d(cfg.reshape_channels, cfg.compress, 1)
        self.norm = nn.BatchNorm3d(cfg.compress)
        self.hourglass = Hourglass(
            (k + 1) * (cfg.compress + 1), cfg.motion_block_expansion, cfg.motion_max_features, cfg.motion_num_blocks
        )
        width = self.hourglass.out_channels
        self.mask = nn.Conv3d(width, k + 1, 7, padding=3)
        self.occlusion = nn.Conv2d(width * cfg.reshape_depth, 1, 7, padding=3)
        self.fast_mask: FourierConv3d | None = None

    def conv_and_norm(self) -> tuple[nn.Module, nn.modules.batchnorm._BatchNorm]:
        return self.compress, self.norm

    def forward(self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """feature (B, 32, d, h, w) -> flow (B, d, h, w, 3) and occlusion (B, 1, h, w)."""
        b = feature.shape[0]
        k1 = self.num_kp + 1
        small = F.relu_(self.conv_norm(feature))  # (B, 4, d, h, w)
        _, c, d, h, w = small.shape
        grid = coordinate_grid(d, h, w, kp_source)  # (d, h, w, 3)

        # One flow proposal per keypoint (driving -> source), plus the identity for the background.
        shift = (kp_source - kp_driving)[:, :, None, None, None, :]
        proposals = torch.cat([grid.expand(b, 1, d, h, w, 3), grid[None, None] + shift], dim=1)  # (B, K+1, d, h, w, 3)

        warped = F.grid_sample(
            small[:, None].expand(b, k1, c, d, h, w).reshape(b * k1, c, d, h, w),
            proposals.reshape(b * k1, d, h, w, 3),
            align_corners=False,
        ).view(b, k1, c, d, h, w)
        heat = keypoint_heatmaps(grid, kp_driving) - keypoint_heatmaps(grid, kp_source)
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1)  # background channel first

        inputs = torch.cat([heat[:, :, None], warped], dim=2).view(b, k1 * (c + 1), d, h, w)
        prediction = self.hourglass(inputs)

        logits = self.fast_mask(prediction) if self.fast_mask is not None else self.mask(prediction)
        mask = F.softmax(logits, dim=1)  # (B, K+1, d, h, w)
        flow = torch.einsum("bkdhw,bkdhwc->bdhwc", mask, proposals)
        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return flow, occlusion


class WarpingNetwork(nn.Module):
    def __init__(self, cfg: WarpingConfig = WarpingConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.dense_motion_network = DenseMotionNetwork(cfg)
        width = cfg.block_expansion * 2**cfg.num_down_blocks
        self.third = ConvNormAct2d(cfg.max_features, width, leaky=True)
        self.fourth = nn.Conv2d(width, width, 1)

    def use_fast_convs(self) -> None:
        """CPU: the 7x7x7 mask convolution through tiled DFTs, ``third`` as Winograd F(4x4, 3x3) (call after
        ``fold_batchnorms``). ~46 MB of kernel spectrum; exact up to float rounding."""
        mask = self.dense_motion_network.mask
        self.dense_motion_network.fast_mask = FourierConv3d(mask.weight, mask.bias)
        assert self.third.folded is not None, "fold_batchnorms() first"
        self.third.fast = WinogradConv(*self.third.folded)

    def forward(self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> warped features (B, 256, 64, 64), already times the occlusion map, and occlusion (B, 1, 64, 64)."""
        flow, occlusion = self.dense_motion_network(feature, kp_source, kp_driving)
        warped = F.grid_sample(feature, flow, align_corners=False)
        b, c, d, h, w = warped.shape
        out = self.fourth(self.third(warped.view(b, c * d, h, w)))
        return out * occlusion, occlusion
