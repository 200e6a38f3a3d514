"""Synthetic LivePortrait checkpoints in the official layout, for tests and offline benchmarks.

The real weights never reach development or CI machines. These files have the official keys, shapes and dtypes
(``testkit/state_dicts.json``) and deterministic values (``testkit/fill_weights.py``), so they load through the same
strict loader as the real ones; with tag ``golden-0`` they are exactly the weights the golden outputs were made with.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.liveportrait.testkit.fill_weights import fill_state_dict
from engine.models import layout

MANIFEST = Path(__file__).parent / "testkit" / "state_dicts.json"
GOLDEN_TAG = "golden-0"

# manifest file name -> path in the models folder
CHECKPOINTS: dict[str, str] = {
    "appearance_feature_extractor.pth": layout.APPEARANCE,
    "motion_extractor.pth": layout.MOTION,
    "warping_module.pth": layout.WARPING,
    "spade_generator.pth": layout.SPADE,
    "stitching_retargeting_module.pth": layout.STITCHING,
}


def load_manifest() -> dict:
    """The official checkpoints' ``[key, shape, dtype]`` lists, by file name (see testkit/README.md)."""
    with MANIFEST.open() as f:
        return json.load(f)


def _zeros(keys: list) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(shape, dtype=getattr(torch, dtype)) for k, shape, dtype in keys}


def synthetic_checkpoint(name: str, tag: str = GOLDEN_TAG, manifest: dict | None = None) -> dict:
    """The synthetic content of one official checkpoint file (``name`` as in the manifest, e.g.
    ``warping_module.pth``). The stitching file holds three sub-state_dicts, filled under ``<sub>.<key>`` names."""
    keys = (manifest or load_manifest())[name]
    if name != "stitching_retargeting_module.pth":
        return fill_state_dict(_zeros(keys), tag)
    out = {}
    for sub, sub_keys in keys.items():
        filled = fill_state_dict({f"{sub}.{k}": v for k, v in _zeros(sub_keys).items()}, tag)
        out[sub] = {k[len(sub) + 1 :]: v for k, v in filled.items()}
    return out


def write_synthetic_models(models_dir: Path, seed: str | int = GOLDEN_TAG, files: list[str] | None = None) -> Path:
    """Write synthetic checkpoints into ``models_dir`` in the HuggingFace layout and return ``models_dir``.

    ``seed`` is the fill tag (an int becomes ``"seed-<n>"``); the default gives the golden weights. ``files``
    limits the output to some manifest names (default: all five ``.pth`` files; the ONNX face models are not made).
    """
    tag = seed if isinstance(seed, str) else f"seed-{seed}"
    root = Path(models_dir)
    manifest = load_manifest()
    threads = torch.get_num_threads()
    # One thread: the spectral-norm vectors' float64 SVDs (SPADE's eighteen 512 x 4608 matrices, most of the time
    # here) took 49 s on two threads of the loaded 2-core machine and 14 s on one, bit for bit the same files.
    torch.set_num_threads(1)
    try:
        for name in files or list(CHECKPOINTS):
            if name not in CHECKPOINTS:
                raise ValueError(f"unknown checkpoint {name!r}; known: {', '.join(CHECKPOINTS)}")
            path = root / CHECKPOINTS[name]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(synthetic_checkpoint(name, tag, manifest), tmp)
            tmp.replace(path)
    finally:
        torch.set_num_threads(threads)
    return root
