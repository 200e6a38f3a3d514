"""Keypoint maths: head pose from bins, rotation, the implicit-keypoint transform, and the MLP feature layout.

x = scale * (kp @ R + exp) + t, with t applied to x and y only (the paper's eq. 1 with z translation dropped).
"""

from __future__ import annotations

import math

import torch

NUM_BINS = 66
BIN_DEGREES = 3.0
BIN_OFFSET = 97.5  # the reference's centring: bin 32.5 is 0 degrees


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(B, 66) pose logits -> (B, 1) degrees: the softmax expectation of the bin index, 3 degrees per bin."""
    idx = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    prob = torch.softmax(logits, dim=1)
    return ((prob * idx).sum(dim=1) * BIN_DEGREES - BIN_OFFSET)[:, None]


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Degrees (B, 1) -> (B, 3, 3), already transposed so that row-vector keypoints rotate as ``kp @ R``.

    R = (Rz(roll) Ry(yaw) Rx(pitch))^T.
    """
    x, y, z = (a.reshape(-1) * (math.pi / 180) for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rx = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], dim=1).view(-1, 3, 3)
    ry = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], dim=1).view(-1, 3, 3)
    rz = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], dim=1).view(-1, 3, 3)
    return (rz @ ry @ rx).transpose(1, 2)


def transform(motion: dict[str, torch.Tensor]) -> torch.Tensor:
    """Motion (pose in degrees, kp and exp (B, 21, 3), scale (B, 1), t (B, 3)) -> keypoints (B, 21, 3)."""
    kp = motion["kp"]
    b = kp.shape[0]
    kp = kp.reshape(b, -1, 3)
    rot = rotation_matrix(motion["pitch"], motion["yaw"], motion["roll"])
    x = (kp @ rot + motion["exp"].reshape(b, -1, 3)) * motion["scale"].reshape(b, 1, 1)
    shift = torch.zeros_like(x[:, :1])
    shift[..., :2] = motion["t"].reshape(b, 1, 3)[..., :2]
    return x + shift


def refine(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The motion extractor's raw heads -> pose in degrees and (B, 21, 3) kp and exp."""
    b = raw["kp"].shape[0]
    return {
        "pitch": bins_to_degrees(raw["pitch"]),
        "yaw": bins_to_degrees(raw["yaw"]),
        "roll": bins_to_degrees(raw["roll"]),
        "t": raw["t"],
        "exp": raw["exp"].reshape(b, -1, 3),
        "scale": raw["scale"],
        "kp": raw["kp"].reshape(b, -1, 3),
    }


def mlp_input(x_s: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
    """[flattened source keypoints, flattened extra] as one row per batch item: the S networks' input."""
    b = x_s.shape[0]
    return torch.cat([x_s.reshape(b, -1), extra.reshape(b, -1)], dim=1)
