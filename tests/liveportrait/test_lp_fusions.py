"""The load-time rewrites of the core are exact up to float rounding, on small random tensors (fast): each is
checked against the plain definition it replaces. The end-to-end proof is test_lp_equivalence.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.liveportrait.blocks import ConvNormAct2d, ConvNormAct3d, fold_batchnorms
from engine.liveportrait.spade import SpadeResBlock, SpectralConv2d, UpsampledConv3x3, _phase_taps
from engine.liveportrait.testkit.fill_weights import fill_module


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upsampled_conv_equals_conv_of_upsampled(scale):
    gen = torch.Generator().manual_seed(scale)
    x = torch.randn(2, 5, 7, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 5, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    want = F.conv2d(F.interpolate(x, scale_factor=float(scale), mode="nearest"), w, b, padding=1)
    got = UpsampledConv3x3(w, b, scale)(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-12)


def test_phase_groups_cover_every_phase_once():
    for scale in (2, 3, 4, 8):
        groups = _phase_taps(scale)
        assert sum(n for _, n, _ in groups) == scale
        assert [first for first, _, _ in groups] == sorted(first for first, _, _ in groups)
    assert [n for _, n, _ in _phase_taps(4)] == [1, 2, 1]  # edge phases read 2 low-res rows, the middle ones 1


@pytest.mark.parametrize("winograd", [False, True])
@pytest.mark.parametrize("cin,cout,scale", [(8, 8, 1), (8, 4, 2), (6, 3, 4)])
def test_fused_spade_block_equals_its_definition(cin, cout, scale, winograd):
    block = fill_module(SpadeResBlock(cin, cout, label_channels=5, hidden=6), tag="fusion").double().eval()
    for m in block.modules():
        if isinstance(m, SpectralConv2d):
            m.fold()
    block.fold(seg_scale=scale)
    if winograd:  # every 3x3 of the block through fastconv.WinogradConv
        block.use_winograd(min_out=1)
        assert block.conv_0.fast is not None and len(block.fast) == (4 if block.learned_shortcut else 2)
    gen = torch.Generator().manual_seed(0)
    seg = torch.randn(1, 5, 4, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(1, cin, 4 * scale, 4 * scale, generator=gen, dtype=torch.float64)

    def plain() -> torch.Tensor:  # SPADE as written in the paper, module by module
        shortcut = block.conv_s(block.norm_s(x, seg)) if block.learned_shortcut else x
        dx = block.conv_0(F.leaky_relu(block.norm_0(x, seg), 0.2))
        dx = block.conv_1(F.leaky_relu(block.norm_1(dx, seg), 0.2))
        return shortcut + dx

    with torch.inference_mode():
        want = plain()
        if scale == 1:
            actv = F.relu(F.conv2d(seg, *block.shared_mlp(), padding=1))
            got = block(x, seg, actv)
        else:
            got = block(x, seg)
    assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("cls,shape", [(ConvNormAct2d, (1, 3, 8, 8)), (ConvNormAct3d, (1, 3, 4, 8, 8))])
def test_folded_batchnorm_equals_conv_then_norm(cls, shape):
    net = fill_module(cls(3, 5), tag="fold").double().eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.inference_mode():
        want = net(x)
        fold_batchnorms(net)
        assert net.folded is not None
        got = net(x)
    assert torch.allclose(got, want, atol=1e-10)
