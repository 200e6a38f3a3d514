"""Strict loading: a wrong, partial or truncated checkpoint never loads silently, and the error says which file
and which keys. Uses the small checkpoints (appearance extractor, stitching MLPs) to stay fast."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from engine.errors import ModelsMissing, WeightsInvalid
from engine.liveportrait import LivePortrait
from engine.liveportrait.appearance import AppearanceFeatureExtractor
from engine.liveportrait.stitching import EYE, LIP, STITCHING, KeypointMLP
from engine.liveportrait.testing import synthetic_checkpoint, write_synthetic_models
from engine.liveportrait.weights import load_file, load_stitching
from engine.models import layout


@pytest.fixture(scope="module")
def appearance_state() -> dict:
    return synthetic_checkpoint("appearance_feature_extractor.pth")


def _save(tmp_path: Path, state) -> Path:
    path = tmp_path / "appearance_feature_extractor.pth"
    torch.save(state, path)
    return path


def _mlps() -> dict[str, KeypointMLP]:
    return {"stitching": KeypointMLP(STITCHING), "lip": KeypointMLP(LIP), "eye": KeypointMLP(EYE)}


def test_synthetic_checkpoint_loads_strictly(tmp_path, appearance_state):
    net = AppearanceFeatureExtractor()
    load_file(net, _save(tmp_path, appearance_state))
    key = "first.conv.weight"
    assert torch.equal(net.state_dict()[key], appearance_state[key])


def test_missing_key_names_file_and_key(tmp_path, appearance_state):
    state = dict(appearance_state)
    del state["first.conv.weight"]
    path = _save(tmp_path, state)
    with pytest.raises(WeightsInvalid) as err:
        load_file(AppearanceFeatureExtractor(), path)
    assert str(path) in str(err.value) and "missing keys: first.conv.weight" in str(err.value)
    assert err.value.code == "weights_invalid"


def test_unexpected_key_names_file_and_key(tmp_path, appearance_state):
    path = _save(tmp_path, {**appearance_state, "extra.layer.weight": torch.zeros(3)})
    with pytest.raises(WeightsInvalid) as err:
        load_file(AppearanceFeatureExtractor(), path)
    assert str(path) in str(err.value) and "unexpected keys: extra.layer.weight" in str(err.value)


def test_wrong_shape_names_key_and_both_shapes(tmp_path, appearance_state):
    path = _save(tmp_path, {**appearance_state, "first.conv.weight": torch.zeros(64, 3, 5, 5)})
    with pytest.raises(WeightsInvalid) as err:
        load_file(AppearanceFeatureExtractor(), path)
    assert "first.conv.weight (64, 3, 5, 5) != (64, 3, 3, 3)" in str(err.value)


def test_non_tensor_value_is_refused(tmp_path, appearance_state):
    path = _save(tmp_path, {**appearance_state, "first.conv.bias": [0.0] * 64})
    with pytest.raises(WeightsInvalid, match="first.conv.bias <list, not a tensor>"):
        load_file(AppearanceFeatureExtractor(), path)


def test_truncated_file_is_refused(tmp_path, appearance_state):
    path = _save(tmp_path, appearance_state)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsInvalid, match="truncated") as err:
        load_file(AppearanceFeatureExtractor(), path)
    assert str(path) in str(err.value)


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "appearance_feature_extractor.pth"
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(WeightsInvalid, match="not a readable checkpoint"):
        load_file(AppearanceFeatureExtractor(), path)


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_not_run(tmp_path, capsys):
    path = tmp_path / "appearance_feature_extractor.pth"
    with path.open("wb") as f:
        pickle.dump({"first.conv.weight": _Payload()}, f, protocol=2)
    with pytest.raises(WeightsInvalid):
        load_file(AppearanceFeatureExtractor(), path)
    assert "pickled code ran" not in capsys.readouterr().out


def test_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(ModelsMissing) as err:
        LivePortrait.from_dir(tmp_path)
    message = str(err.value)
    assert str(tmp_path / layout.APPEARANCE) in message
    assert "python -m engine.models download" in message and err.value.code == "models_missing"


def test_missing_later_file_is_named(tmp_path):
    write_synthetic_models(tmp_path, files=["appearance_feature_extractor.pth"])
    with pytest.raises(ModelsMissing, match="motion_extractor.pth"):
        LivePortrait.from_dir(tmp_path)


def test_stitching_accepts_dataparallel_prefix(tmp_path):
    data = synthetic_checkpoint("stitching_retargeting_module.pth")
    data["retarget_eye"] = {f"module.{k}": v for k, v in data["retarget_eye"].items()}
    path = tmp_path / "stitching_retargeting_module.pth"
    torch.save(data, path)
    mlps = _mlps()
    load_stitching(mlps, path)
    first = next(iter(data["retarget_eye"]))
    assert torch.equal(mlps["eye"].state_dict()[first.removeprefix("module.")], data["retarget_eye"][first])


def test_stitching_missing_part_is_named(tmp_path):
    data = synthetic_checkpoint("stitching_retargeting_module.pth")
    del data["retarget_mouth"]
    path = tmp_path / "stitching_retargeting_module.pth"
    torch.save(data, path)
    with pytest.raises(WeightsInvalid, match="retarget_mouth"):
        load_stitching(_mlps(), path)


def test_stitching_wrong_shape_names_part_and_key(tmp_path):
    data = synthetic_checkpoint("stitching_retargeting_module.pth")
    key = next(iter(data["retarget_shoulder"]))
    data["retarget_shoulder"][key] = torch.zeros(1)
    path = tmp_path / "stitching_retargeting_module.pth"
    torch.save(data, path)
    with pytest.raises(WeightsInvalid) as err:
        load_stitching(_mlps(), path)
    assert "[retarget_shoulder]" in str(err.value) and key in str(err.value)
