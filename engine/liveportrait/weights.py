"""Loading the official checkpoints: strict keys and shapes, errors that name the file and the keys.

The files are read with ``torch.load(weights_only=True)`` (no pickle code runs). A missing file, a truncated or
foreign file, a missing, unexpected or misshapen key: each is an error, never a silent partial load.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.errors import WeightsInvalid
from engine.models.layout import missing_model

STITCHING_PARTS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}
MAX_LISTED = 8


def read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise missing_model(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise WeightsInvalid(f"{path}: not a readable checkpoint (truncated or wrong file?): {exc}") from exc
    if not isinstance(data, dict):
        raise WeightsInvalid(f"{path}: expected a state_dict, found {type(data).__name__}")
    return data


def _listed(keys: list[str]) -> str:
    more = f" (+{len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else ""
    return ", ".join(keys[:MAX_LISTED]) + more


def _shape(value: object) -> str:
    return str(tuple(value.shape)) if torch.is_tensor(value) else f"<{type(value).__name__}, not a tensor>"


def check_state_dict(module: nn.Module, state: dict, source: str) -> None:
    """Raise WeightsInvalid unless ``state`` has exactly the module's keys, each with the module's shape."""
    want = module.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    misshapen = [
        f"{k} {_shape(state[k])} != {tuple(want[k].shape)}"
        for k in want
        if k in state and (not torch.is_tensor(state[k]) or state[k].shape != want[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if misshapen:
        problems.append(f"wrong shapes: {_listed(misshapen)}")
    if problems:
        raise WeightsInvalid(f"{source}: " + "; ".join(problems))


def load_into(module: nn.Module, state: dict, source: str) -> None:
    check_state_dict(module, state, source)
    module.load_state_dict(state, strict=True)


def load_file(module: nn.Module, path: Path) -> None:
    load_into(module, read_checkpoint(path), str(path))


def load_stitching(modules: dict[str, nn.Module], path: Path) -> None:
    """The stitching file: three sub-state_dicts; keys may carry DataParallel's ``module.`` prefix."""
    data = read_checkpoint(path)
    for name, key in STITCHING_PARTS.items():
        if key not in data or not isinstance(data[key], dict):
            raise WeightsInvalid(f"{path}: missing the {key!r} sub-state_dict ({name} network)")
        state = {k.removeprefix("module."): v for k, v in data[key].items()}
        load_into(modules[name], state, f"{path}[{key}]")
