"""G, the SPADE generator: the warped 256x64x64 feature map -> a 512x512 RGB image.

Every residual block is normalised by SPADE (instance norm modulated per pixel by convolutions of the warped
features themselves) and its convolutions carry spectral norm. The modules hold the checkpoints' parameters under
their official names; ``fold()`` (once, at load) derives the weights a frame actually uses:

- spectral norm divided out (``weight_orig / sigma`` from the stored vectors), so a frame never pays for it;
- per block, the SPADE "shared MLP" convolutions of its two or three norms concatenated into one convolution, and
  the MLPs of the six middle blocks (all at the segmap's 64x64) into one;
- gamma and beta of each norm as one convolution, with SPADE's ``1 + gamma`` folded into the bias;
- in the shortcut, the 1x1 ``conv_s`` folded into its norm's beta convolution (both are linear);
- on a nearest-upsampled segmap, the shared MLP computed at the segmap's own resolution, one small kernel per
  output phase (``upsampled_conv3x3``): 4x fewer multiply-adds at 4x upsampling, 2.25x at 2x.

Each is exact up to float rounding; tests/liveportrait/test_lp_equivalence.py holds the result to the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.liveportrait.fastconv import WinogradConv


@dataclass(frozen=True)
class SpadeConfig:
    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64
    hidden: int = 128  # SPADE's shared MLP width


def _phase_taps(scale: int) -> list[tuple[int, int, list[int]]]:
    """For a 3-tap kernel on a ``scale``-times nearest-upsampled axis: groups of output phases that read the same
    low-resolution offsets. Each group: (first phase, number of phases, offset of each of the 3 taps)."""
    groups: list[tuple[int, int, list[int]]] = []
    for phase in range(scale):
        offsets = [(phase + k) // scale for k in (-1, 0, 1)]
        if groups and groups[-1][2] == offsets:
            first, n, _ = groups[-1]
            groups[-1] = (first, n + 1, offsets)
        else:
            groups.append((phase, 1, offsets))
    return groups


class UpsampledConv3x3:
    """conv3x3(nearest_upsample(x, scale), w, b, padding=1) computed on x itself.

    Output pixel (scale*i + a) only reads low-resolution pixels i-1, i, i+1, and for most phases a only one or two
    of them: the taps that land on the same low-res pixel are summed into one weight. Phases with the same
    footprint share one convolution; the results are interleaved into the full-resolution output.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, scale: int) -> None:
        self.scale = scale
        self.cout = weight.shape[0]
        self.bias = bias
        self.parts: list[tuple[slice, slice, tuple[int, int, int, int], torch.Tensor]] = []
        w64 = weight.double()
        for ya, yn, yoff in _phase_taps(scale):
            for xa, xn, xoff in _phase_taps(scale):
                ylo, yhi, xlo, xhi = min(yoff), max(yoff), min(xoff), max(xoff)
                # my[p, d, k] = 1 when tap k of phase p lands on low-res offset lo + d
                my = torch.zeros(yn, yhi - ylo + 1, 3, dtype=torch.float64)
                mx = torch.zeros(xn, xhi - xlo + 1, 3, dtype=torch.float64)
                for p in range(yn):
                    for k in range(3):
                        my[p, (ya + p + k - 1) // scale - ylo, k] = 1
                for p in range(xn):
                    for k in range(3):
                        mx[p, (xa + p + k - 1) // scale - xlo, k] = 1
                w = torch.einsum("pak,qbl,oikl->opqiab", my, mx, w64)  # (cout, yn, xn, cin, ky, kx)
                w = w.reshape(self.cout * yn * xn, *w.shape[3:]).to(weight.dtype).contiguous()
                self.parts.append((slice(ya, ya + yn), slice(xa, xa + xn), (ylo, yhi, xlo, xhi), w))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        s = self.scale
        padded = F.pad(x, (1, 1, 1, 1))
        out = x.new_empty(b, self.cout, h, s, w, s)
        for ys, xs, (ylo, yhi, xlo, xhi), weight in self.parts:
            window = padded[:, :, 1 + ylo : 1 + h + yhi, 1 + xlo : 1 + w + xhi]
            part = F.conv2d(window, weight.to(x.dtype))
            yn, xn = ys.stop - ys.start, xs.stop - xs.start
            out[:, :, :, ys, :, xs] = part.view(b, self.cout, yn, xn, h, w).permute(0, 1, 4, 2, 5, 3)
        out = out.view(b, self.cout, h * s, w * s)
        if self.bias is not None:
            out += self.bias.view(1, -1, 1, 1)
        return out


class SpectralConv2d(nn.Module):
    """A Conv2d stored as the checkpoints store a spectrally normalised one (weight_orig, weight_u, weight_v).

    The effective weight is ``weight_orig / sigma`` with ``sigma = u . (W v)`` from the stored vectors (what
    torch's spectral_norm computes in eval mode). It is computed once by ``fold()``, not per call.
    """

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True) -> None:
        super().__init__()
        self.padding = kernel // 2
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.register_buffer("weight_u", torch.empty(cout))
        self.register_buffer("weight_v", torch.empty(cin * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("weight", torch.empty(0), persistent=False)
        self.fast: WinogradConv | None = None

    def fold(self) -> None:
        w = self.weight_orig.detach().float()
        sigma = torch.dot(self.weight_u.float(), torch.mv(w.reshape(w.shape[0], -1), self.weight_v.float()))
        self.weight = (w / sigma).to(self.weight_orig.dtype)
        self.fast = None  # derived from the old weight

    def use_winograd(self) -> None:
        """Run as a Winograd F(4x4, 3x3) convolution (CPU; after ``fold()``)."""
        self.fast = WinogradConv(self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast is not None:
            return self.fast(x)
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class Spade(nn.Module):
    """Parameter-free instance norm, then a per-pixel scale and shift predicted from the segmentation map.

    Holds the parameters; the block that owns it runs the fused computation (see the module docstring).
    """

    def __init__(self, channels: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        self.channels = channels
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """The unfused definition (kept as the readable statement of SPADE; frames use the fused path)."""
        normalized = F.instance_norm(x, eps=1e-5)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma and beta as one convolution (2C outputs), with the ``1 +`` in gamma's bias."""
        weight = torch.cat([self.mlp_gamma.weight, self.mlp_beta.weight]).detach()
        bias = torch.cat([self.mlp_gamma.bias + 1, self.mlp_beta.bias]).detach()
        return weight.contiguous(), bias


def _fp32_einsum(eq: str, *ts: torch.Tensor) -> torch.Tensor:
    return torch.einsum(eq, *(t.detach().double() for t in ts)).to(ts[-1].dtype)


class SpadeResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        mid = min(cin, cout)
        self.hidden = hidden
        self.learned_shortcut = cin != cout
        self.conv_0 = SpectralConv2d(cin, mid, 3)
        self.conv_1 = SpectralConv2d(mid, cout, 3)
        self.norm_0 = Spade(cin, label_channels, hidden)
        self.norm_1 = Spade(mid, label_channels, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralConv2d(cin, cout, 1, bias=False)
            self.norm_s = Spade(cin, label_channels, hidden)
        self.fused: dict[str, torch.Tensor] = {}
        self.fast: dict[str, WinogradConv] = {}
        self.upsampled: UpsampledConv3x3 | None = None

    def norms(self) -> list[Spade]:
        return [self.norm_0, self.norm_1] + ([self.norm_s] if self.learned_shortcut else [])

    def shared_mlp(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The shared-MLP convolutions of this block's norms as one (their outputs stacked on channels)."""
        convs = [n.mlp_shared[0] for n in self.norms()]
        return (torch.cat([c.weight for c in convs]).detach().contiguous(),
                torch.cat([c.bias for c in convs]).detach())

    def fold(self, seg_scale: int) -> None:
        """Derive the per-frame weights (after the spectral convs are folded). ``seg_scale``: how many times the
        block's resolution exceeds the segmap's (1: the MLP runs by the generator, shared with its neighbours)."""
        f: dict[str, torch.Tensor] = {}
        f["gb_0"], f["gb_0_bias"] = self.norm_0.scale_shift()
        f["gb_1"], f["gb_1_bias"] = self.norm_1.scale_shift()
        if self.learned_shortcut:
            gamma, beta, conv_s = self.norm_s.mlp_gamma, self.norm_s.mlp_beta, self.conv_s.weight[:, :, 0, 0]
            f["gamma_s"], f["gamma_s_bias"] = gamma.weight.detach(), (gamma.bias + 1).detach()
            # conv_s(n * gamma + beta) = conv_s(n * gamma) + (conv_s . mlp_beta)(actv): fold the 1x1 into beta.
            f["beta_s"] = _fp32_einsum("oc,cikl->oikl", conv_s, beta.weight).contiguous()
            f["beta_s_bias"] = _fp32_einsum("oc,c->o", conv_s, beta.bias)
        self.fused = f
        self.fast = {}
        self.upsampled = UpsampledConv3x3(*self.shared_mlp(), seg_scale) if seg_scale > 1 else None

    def use_winograd(self, min_out: int = 256) -> None:
        """CPU (after ``fold``): the main convolutions, and the modulation convolutions with at least ``min_out``
        outputs, as Winograd F(4x4, 3x3). Narrower modulation convolutions measured no faster."""
        self.conv_0.use_winograd()
        self.conv_1.use_winograd()
        names = ["gb_0", "gb_1"] + (["gamma_s", "beta_s"] if self.learned_shortcut else [])
        self.fast = {n: WinogradConv(self.fused[n], self.fused[f"{n}_bias"])
                     for n in names if self.fused[n].shape[0] >= min_out}

    def _modulation(self, name: str, actv: torch.Tensor) -> torch.Tensor:
        fast = self.fast.get(name)
        if fast is not None:
            return fast(actv)
        return F.conv2d(actv, self.fused[name], self.fused[f"{name}_bias"], padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, actv: torch.Tensor | None = None) -> torch.Tensor:
        """``actv``: the block's shared-MLP output (ReLU applied) when the caller computed it, else derived from
        ``seg`` here."""
        if actv is None:
            assert self.upsampled is not None, "SpadeResBlock.fold() first"
            actv = F.relu_(self.upsampled(seg))
        h = self.hidden
        normalized = F.instance_norm(x, eps=1e-5)
        if self.learned_shortcut:
            act_s = actv[:, 2 * h : 3 * h]
            shortcut = self.conv_s(normalized * self._modulation("gamma_s", act_s))
            shortcut += self._modulation("beta_s", act_s)
        else:
            shortcut = x
        dx = self.conv_0(_modulate(normalized, self._modulation("gb_0", actv[:, :h])))
        normalized = F.instance_norm(dx, eps=1e-5)
        dx = self.conv_1(_modulate(normalized, self._modulation("gb_1", actv[:, h : 2 * h])))
        return dx.add_(shortcut)


def _modulate(normalized: torch.Tensor, gamma_beta: torch.Tensor) -> torch.Tensor:
    """leaky_relu(normalized * gamma + beta, 0.2) from the stacked (gamma, beta) map, in place where possible."""
    gamma, beta = gamma_beta.chunk(2, dim=1)
    return F.leaky_relu_(torch.addcmul(beta, normalized, gamma), 0.2)


class SpadeGenerator(nn.Module):
    MIDDLE = 6

    def __init__(self, cfg: SpadeConfig = SpadeConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        cin = min(cfg.max_features, cfg.block_expansion * 2**cfg.num_down_blocks)  # 256
        wide = 2 * cin
        self.fc = nn.Conv2d(cin, wide, 3, padding=1)
        for i in range(self.MIDDLE):
            self.add_module(f"G_middle_{i}", SpadeResBlock(wide, wide, cin, cfg.hidden))
        self.up_0 = SpadeResBlock(wide, cin, cin, cfg.hidden)
        self.up_1 = SpadeResBlock(cin, cfg.out_channels, cin, cfg.hidden)
        self.conv_img = nn.Sequential(
            nn.Conv2d(cfg.out_channels, 3 * cfg.upscale**2, 3, padding=1), nn.PixelShuffle(cfg.upscale)
        )
        self.middle_mlp: tuple[torch.Tensor, torch.Tensor] | None = None
        self.fast_fc: WinogradConv | None = None

    def middle(self) -> list[SpadeResBlock]:
        return [getattr(self, f"G_middle_{i}") for i in range(self.MIDDLE)]

    def fold_spectral_norm(self) -> None:
        """Derive every per-frame weight from the loaded parameters (call again after a dtype or device move)."""
        for m in self.modules():
            if isinstance(m, SpectralConv2d):
                m.fold()
        for block in self.middle():
            block.fold(seg_scale=1)
        self.up_0.fold(seg_scale=2)
        self.up_1.fold(seg_scale=4)
        # The six middle blocks read the segmap at its own resolution: one convolution for all their MLPs.
        parts = [block.shared_mlp() for block in self.middle()]
        self.middle_mlp = (torch.cat([w for w, _ in parts]).contiguous(), torch.cat([b for _, b in parts]))
        self.fast_fc = None

    def use_fast_convs(self) -> None:
        """CPU: the wide 3x3 convolutions as Winograd F(4x4, 3x3) (call after ``fold_spectral_norm()``).

        Only where it measured faster than the direct convolution: fc, the middle blocks' 512->512 pairs and
        128->1024 modulations, up_0's convolutions and the wide (256+ outputs) modulations of up_0 and up_1. up_1's
        64-channel convolutions at 256x256 stay direct. Costs ~0.8 GB of transformed weights (36/9 of the originals).
        """
        self.fast_fc = WinogradConv(self.fc.weight, self.fc.bias)
        for block in self.middle():  # 512->512 pairs and 128->1024 modulations: both ~1.9x faster
            block.use_winograd()
        self.up_0.use_winograd()
        self.up_1.use_winograd()  # up_1's own 256->64, 64->64 at 256x256 stay direct (see below)
        for conv in (self.up_1.conv_0, self.up_1.conv_1):
            conv.fast = None

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """feature (B, 256, 64, 64) -> image (B, 3, 512, 512) in [0, 1]."""
        assert self.middle_mlp is not None, "SpadeGenerator.fold_spectral_norm() first"
        seg = feature
        x = self.fast_fc(feature) if self.fast_fc is not None else self.fc(feature)
        actv = F.relu_(F.conv2d(seg, *self.middle_mlp, padding=1))
        width = 2 * self.cfg.hidden
        for i, block in enumerate(self.middle()):
            x = block(x, seg, actv[:, i * width : (i + 1) * width])
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))
