"""The CPU fast convolutions (engine/liveportrait/fastconv.py) equal the plain torch convolution they replace, on
small random inputs in float64 (so the only difference is rounding), including sizes that are not a multiple of
the tile, several bands of tiles, and batches above one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.liveportrait.fastconv import FourierConv3d, WinogradConv


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("shape", [(1, 5, 8, 8), (1, 3, 13, 11), (2, 4, 7, 9)])
@pytest.mark.parametrize("bias", [True, False])
def test_winograd_conv2d_equals_conv2d(shape, bias):
    x = _randn(*shape, seed=1)
    w = _randn(6, shape[1], 3, 3, seed=2)
    b = _randn(6, seed=3) if bias else None
    got = WinogradConv(w, b)(x)
    want = F.conv2d(x, w, b, padding=1)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-11)


def test_winograd_conv2d_in_several_bands():
    x = _randn(1, 3, 29, 9, seed=4)
    w = _randn(4, 3, 3, 3, seed=5)
    conv = WinogradConv(w, None)
    conv.BAND_TILES = 3  # 3 tiles a band: one tile row per band, 8 bands
    assert torch.allclose(conv(x), F.conv2d(x, w, padding=1), atol=1e-11)


@pytest.mark.parametrize("depth_taps", [1, 3])
def test_winograd_conv3d_equals_conv3d(depth_taps):
    x = _randn(1, 4, 5, 10, 7, seed=6)
    w = _randn(3, 4, depth_taps, 3, 3, seed=7)
    b = _randn(3, seed=8)
    got = WinogradConv(w, b)(x)
    want = F.conv3d(x, w, b, padding=(depth_taps // 2, 1, 1))
    assert torch.allclose(got, want, atol=1e-11)


@pytest.mark.parametrize("kernel,tile", [((7, 7, 7), 4), ((3, 5, 5), 8), ((1, 3, 3), 5)])
def test_fourier_conv3d_equals_conv3d(kernel, tile):
    x = _randn(1, 3, 9, 13, 11, seed=9)
    w = _randn(4, 3, *kernel, seed=10)
    b = _randn(4, seed=11)
    got = FourierConv3d(w, b, tile=tile)(x)
    want = F.conv3d(x, w, b, padding=tuple(k // 2 for k in kernel))
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-10)


def test_fourier_conv3d_batch_and_float32():
    x = _randn(2, 3, 4, 16, 16, seed=12)
    w = _randn(2, 3, 7, 7, 7, seed=13)
    want = F.conv3d(x, w, padding=3)
    assert torch.allclose(FourierConv3d(w, None)(x), want, atol=1e-10)
    got32 = FourierConv3d(w.float(), None)(x.float())
    assert got32.dtype == torch.float32
    assert (got32.double() - want).abs().max() < 1e-4 * want.abs().max()


def test_unsupported_kernels_are_refused():
    with pytest.raises(ValueError):
        WinogradConv(torch.zeros(2, 2, 5, 5), None)
    with pytest.raises(ValueError):
        FourierConv3d(torch.zeros(2, 2, 3, 4, 4), None)


def test_fast_paths_leave_the_state_dicts_alone():
    """The transformed weights live outside the state_dicts: the official keys (and strict loading) are unchanged."""
    from engine.liveportrait.blocks import fold_batchnorms
    from engine.liveportrait.spade import SpadeGenerator
    from engine.liveportrait.warping import WarpingNetwork

    warping = WarpingNetwork().eval()  # default init: only the keys matter here
    generator = SpadeGenerator().eval()
    for m in generator.modules():  # the spectral vectors start uninitialised
        for name in ("weight_u", "weight_v"):
            if hasattr(m, name):
                getattr(m, name).fill_(1.0)
    before = {name: list(net.state_dict()) for name, net in (("w", warping), ("g", generator))}
    fold_batchnorms(warping)
    warping.use_fast_convs()
    generator.fold_spectral_norm()
    generator.use_fast_convs()
    assert warping.dense_motion_network.fast_mask is not None and generator.fast_fc is not None
    assert {name: list(net.state_dict()) for name, net in (("w", warping), ("g", generator))} == before
