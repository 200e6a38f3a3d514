"""S: the stitching MLP and the eye and lip retargeting MLPs (plain ReLU MLPs over flattened keypoints)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MLPConfig:
    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


STITCHING = MLPConfig(126, (128, 128, 64), 65)  # [x_s, x_d] -> 63 keypoint deltas + (tx, ty)
LIP = MLPConfig(65, (128, 128, 64), 63)  # [x_s, source lip ratio, driving lip ratio] -> 63 deltas
EYE = MLPConfig(66, (256, 256, 128, 128, 64), 63)  # [x_s, eye ratios (2), driving eye ratio] -> 63 deltas


class KeypointMLP(nn.Module):
    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        sizes = (cfg.input_size, *cfg.hidden_sizes)
        layers: list[nn.Module] = []
        for cin, cout in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(cin, cout), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], cfg.output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
