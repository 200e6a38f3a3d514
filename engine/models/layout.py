"""The models folder: the HuggingFace repo layout of ``KlingTeam/LivePortrait`` and the pinned files.

Sizes and sha256 are pinned from the repo's Git LFS pointers; a download that does not match them is
an error, never a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelsMissing

HF_REPO = "KlingTeam/LivePortrait"
DEFAULT_MODELS_DIR = Path("models")


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to the models folder, as in the HF repo
    size: int
    sha256: str
    role: str  # "liveportrait" (the network) or "face" (detection and landmarks)


APPEARANCE = "liveportrait/base_models/appearance_feature_extractor.pth"
MOTION = "liveportrait/base_models/motion_extractor.pth"
WARPING = "liveportrait/base_models/warping_module.pth"
SPADE = "liveportrait/base_models/spade_generator.pth"
STITCHING = "liveportrait/retargeting_models/stitching_retargeting_module.pth"
LANDMARK_203 = "liveportrait/landmark.onnx"
SCRFD = "insightface/models/buffalo_l/det_10g.onnx"
LANDMARK_106 = "insightface/models/buffalo_l/2d106det.onnx"

FILES: tuple[ModelFile, ...] = (
    ModelFile(APPEARANCE, 3387959, "5279bb8654293dbdf327030b397f107237dd9212fb11dd75b83dfb635211ceb5", "liveportrait"),
    ModelFile(MOTION, 112545506, "251e6a94ad667a1d0c69526d292677165110ef7f0cf0f6d199f0e414e8aa0ca5", "liveportrait"),
    ModelFile(WARPING, 182180086, "2f61a6f265fe344f14132364859a78bdbbc2068577170693da57fb96d636e282", "liveportrait"),
    ModelFile(SPADE, 221813590, "4780afc7909a9f84e24c01d73b31a555ef651521a1fe3b2429bd04534d992aee", "liveportrait"),
    ModelFile(STITCHING, 2393098, "3652d5a3f95099141a56986aaddec92fadf0a73c87a20fac9a2c07c32b28b611", "liveportrait"),
    ModelFile(LANDMARK_203, 114666491, "31d22a5041326c31f19b78886939a634a5aedcaa5ab8b9b951a1167595d147db", "face"),
    ModelFile(SCRFD, 16923827, "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91", "face"),
    ModelFile(LANDMARK_106, 5030888, "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf", "face"),
)

BY_PATH: dict[str, ModelFile] = {f.path: f for f in FILES}

# The network's five checkpoints, in the order LivePortrait.from_dir reads them.
LIVEPORTRAIT: tuple[str, ...] = (APPEARANCE, MOTION, WARPING, SPADE, STITCHING)


def models_root(path: Path) -> Path:
    """The models folder a model file belongs to (the parent of its ``liveportrait`` folder)."""
    for parent in path.parents:
        if parent.name == "liveportrait":
            return parent.parent
    return path.parent


def missing_model(path: Path) -> ModelsMissing:
    """The error for a model file that is not there, saying how to get it."""
    return ModelsMissing(
        f"missing model file {path}: run `python -m engine.models download --dir {models_root(path)}` "
        "or copy the files of the HuggingFace repo KlingTeam/LivePortrait there"
    )


def require_liveportrait(models_dir: Path) -> None:
    """Raise ModelsMissing for the first of the network's checkpoints that is not in ``models_dir``: a look at the
    folder, before torch is imported or a network built (seconds of a start that would fall back anyway)."""
    for rel in LIVEPORTRAIT:
        if not (Path(models_dir) / rel).is_file():
            raise missing_model(Path(models_dir) / rel)
