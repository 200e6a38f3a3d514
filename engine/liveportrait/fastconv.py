"""Fewer multiply-adds for the heaviest convolutions of warp + decode on the CPU.

The direct convolutions already run near the CPU's peak, so only fewer multiply-adds make a frame faster. Two
exact rewrites (exact up to float rounding), each built once from the loaded weights and used in place of one
convolution (``same`` padding, stride 1, batch 1):

- ``WinogradConv``, F(4x4, 3x3): a 3x3 convolution over 4x4 output tiles as 36 pointwise products in the
  Winograd domain, one batched matrix product over channels per point: 2.25 multiply-adds per output instead of 9.
  Used for the 512->512 convolutions of the generator's middle blocks and the 3x3x3 convolutions of the dense
  motion hourglass at 64x64 (in 3D: the depth taps stay a sum of 2-D Winograd products over shifted depth slices).
- ``FourierConv3d``: the dense motion network's 7x7x7 mask convolution through 2-D DFTs of 22x22 tiles along
  height and width (overlap-save, 16x16 outputs per tile); per frequency, a complex matrix product over input
  channels and the 7 depth taps. ~12x fewer multiply-adds than the 343-tap direct convolution.

Both keep their transformed weights as plain attributes, outside any state_dict, so loading still sees (and
strictly checks) the official keys only. The DFTs are small matrix products rather than ``torch.fft`` calls:
on thousands of tiny tiles pocketfft is slower than a matrix product here, and the kernel side is exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# F(4x4, 3x3) transforms (Lavin & Gray 2015, interpolation points 0, +-1, +-2, inf).
_BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
_G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
_AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def _as_5d(x: torch.Tensor) -> torch.Tensor:
    return x[:, :, None] if x.dim() == 4 else x


class WinogradConv:
    """conv2d / conv3d with a (.., 3, 3) kernel, padding ``k // 2`` on every axis, stride 1, via F(4x4, 3x3).

    weight: (O, C, 3, 3) or (O, C, KD, 3, 3); bias: (O,) or None. Input batch must be 1.
    """

    TILE = 4
    BAND_TILES = 128

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        w = _as_5d(weight.detach()).double()
        o, c, kd, kh, kw = w.shape
        if (kh, kw) != (3, 3) or kd % 2 != 1:
            raise ValueError(f"WinogradConv needs a (.., 3, 3) kernel with odd depth, got {tuple(weight.shape)}")
        dtype, device = weight.dtype, weight.device
        g2 = torch.kron(torch.tensor(_G, dtype=torch.float64), torch.tensor(_G, dtype=torch.float64))  # (36, 9)
        u = (g2.to(w.device) @ w.permute(3, 4, 2, 0, 1).reshape(9, kd * o * c)).view(36, kd, o, c)
        self.u = u.permute(1, 0, 2, 3).to(dtype).contiguous()  # (KD, 36, O, C)
        bt = torch.tensor(_BT, dtype=torch.float64)
        at = torch.tensor(_AT, dtype=torch.float64)
        self.bt2 = torch.kron(bt, bt).to(device, dtype)  # (36, 36): input tile -> Winograd domain
        self.at2 = torch.kron(at, at).to(device, dtype)  # (16, 36): Winograd domain -> 4x4 output tile
        self.bias = None if bias is None else bias.detach().to(dtype)
        self.depth_taps = kd
        self.is_3d = weight.dim() == 5

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            return torch.cat([self(x[i : i + 1]) for i in range(x.shape[0])])
        x5 = _as_5d(x)[0]
        c, d, h, w = x5.shape
        t, pd = self.TILE, self.depth_taps // 2
        nty, ntx = -(-h // t), -(-w // t)
        xp = F.pad(x5, (1, ntx * t - w + 1, 1, nty * t - h + 1, pd, pd))  # (C, Dp, 4 nty + 2, 4 ntx + 2)
        # Bands of tile rows small enough for the transformed tiles to stay in cache: past ~256 tiles per band the
        # transforms become memory-bound and the product loses to the direct convolution.
        band = max(1, self.BAND_TILES // ntx)
        # Each band writes its rows (and the bias) straight into the output: no concatenation, one pass.
        out = torch.empty(self.u.shape[2], d, nty * t, ntx * t, dtype=x.dtype, device=x.device)
        for r in range(0, nty, band):
            self._band(xp[:, :, r * t : (r + band) * t + 2], d, out[:, :, r * t : (r + band) * t])
        y = out[:, :, :h, :w]
        return y[None] if self.is_3d else y[:, 0][None]

    def _band(self, xp: torch.Tensor, d: int, dest: torch.Tensor) -> None:
        """Padded rows (C, Dp, 4 nty + 2, 4 ntx + 2) -> ``dest`` rows (O, D, 4 nty, 4 ntx), bias added."""
        c = xp.shape[0]
        t = self.TILE
        tiles = xp.unfold(2, t + 2, t).unfold(3, t + 2, t)  # (C, Dp, nty, ntx, 6, 6), overlapping windows
        nty, ntx = tiles.shape[2], tiles.shape[3]
        nt = nty * ntx
        v = self.bt2 @ tiles.permute(4, 5, 0, 1, 2, 3).reshape(36, -1)
        v = v.view(36, c, xp.shape[1] * nt)
        m = None
        for k in range(self.depth_taps):  # depth tap k reads input slices k .. k + d - 1
            rhs = v[:, :, k * nt : (k + d) * nt]
            m = torch.bmm(self.u[k], rhs) if m is None else m.baddbmm_(self.u[k], rhs)
        o = m.shape[1]
        y = (self.at2 @ m.view(36, -1)).view(t, t, o, d, nty, ntx).permute(2, 3, 4, 0, 5, 1)
        tiles_out = dest.view(o, d, nty, t, ntx, t)
        if self.bias is None:
            tiles_out.copy_(y)
        else:
            torch.add(y, self.bias.view(-1, 1, 1, 1, 1, 1), out=tiles_out)


class FourierConv3d:
    """conv3d with an odd (KD, K, K) kernel, padding ``k // 2`` on every axis, stride 1, through tiled 2-D DFTs.

    Each 16x16 output tile reads a (16 + K - 1)^2 input window; a circular convolution of that window equals the
    linear one on the tile (no wrap-around reaches it). The kernel's spectrum is computed once, in float64.
    weight: (O, C, KD, K, K); bias (O,) or None. Input batch must be 1.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, tile: int = 16) -> None:
        o, c, kd, kh, kw = weight.shape
        if kh != kw or kh % 2 != 1 or kd % 2 != 1:
            raise ValueError(f"FourierConv3d needs an odd (KD, K, K) kernel, got {tuple(weight.shape)}")
        dtype, device = weight.dtype, weight.device
        cdtype = torch.complex64 if dtype != torch.float64 else torch.complex128
        self.k, self.depth_taps, self.tile = kh, kd, tile
        n = tile + kh - 1  # DFT length (window)
        nr = n // 2 + 1  # real DFT bins along width
        self.n, self.nr = n, nr
        pos = torch.arange(n, dtype=torch.float64)
        fr = torch.arange(nr, dtype=torch.float64)
        # width: real window -> nr complex bins, as one real matrix with interleaved (re, im) columns
        ang = 2 * math.pi * pos[:, None] * fr[None] / n
        self.dft_w = torch.stack([torch.cos(ang), -torch.sin(ang)], -1).reshape(n, 2 * nr).to(device, dtype)
        # height: complex DFT, forward (n x n) and inverse restricted to the tile's rows (tile x n)
        ones = torch.ones(n, n, dtype=torch.float64)
        self.dft_h = torch.polar(ones, -2 * math.pi * pos[:, None] * pos[None] / n).to(device, cdtype)
        out_pos = torch.arange(tile, dtype=torch.float64)
        self.idft_h = torch.polar(ones[:tile], 2 * math.pi * out_pos[:, None] * pos[None] / n).to(device, cdtype)
        # width inverse from the half spectrum to the tile's columns: Re(sum_f c_f Y_f e^{+i..}) / n^2
        weight_f = torch.full((nr,), 2.0, dtype=torch.float64)
        weight_f[0] = 1
        if n % 2 == 0:
            weight_f[-1] = 1
        g = torch.polar(weight_f[:, None].expand(nr, tile) / (n * n), 2 * math.pi * fr[:, None] * out_pos[None] / n)
        self.idft_w = torch.stack([g.real, -g.imag], 1).reshape(2 * nr, tile).to(device, dtype)
        # correlation = product with the conjugate spectrum of the kernel placed at the window's origin
        padded = F.pad(weight.detach().double(), (0, n - kw, 0, n - kh))
        spec = torch.fft.rfft2(padded).conj()  # (O, C, KD, n, nr)
        self.spec = spec.permute(3, 4, 2, 0, 1).reshape(n * nr, kd, o, c).to(cdtype).contiguous()
        self.bias = None if bias is None else bias.detach().to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            return torch.cat([self(x[i : i + 1]) for i in range(x.shape[0])])
        _, c, d, h, w = x.shape
        t, n, nr, p, pd = self.tile, self.n, self.nr, self.k // 2, self.depth_taps // 2
        nty, ntx = -(-h // t), -(-w // t)
        nt = nty * ntx
        dp = d + 2 * pd
        xp = F.pad(x[0], (p, ntx * t - w + p, p, nty * t - h + p, pd, pd))  # (C, Dp, Hp, Wp)
        windows = xp.unfold(2, n, t).unfold(3, n, t)  # (C, Dp, nty, ntx, n, n), overlapping
        rows = torch.view_as_complex((windows @ self.dft_w).unflatten(-1, (nr, 2)))  # width DFT: (.., n, nr)
        spec_x = self.dft_h @ rows.permute(4, 5, 0, 1, 2, 3).reshape(n, -1)  # (fh, [fw, C, Dp, nty, ntx])
        spec_x = spec_x.view(n * nr, c, dp * nt)
        out = None
        for k in range(self.depth_taps):  # per frequency: (O, C) @ (C, d tiles), depth tap k shifts the slices
            rhs = spec_x[:, :, k * nt : (k + d) * nt]
            out = torch.bmm(self.spec[:, k], rhs) if out is None else out.baddbmm_(self.spec[:, k], rhs)
        o = out.shape[1]
        cols = torch.view_as_real((self.idft_h @ out.view(n, -1)).view(t, nr, o, d, nty, ntx))
        cols = cols.permute(2, 3, 4, 0, 5, 1, 6).reshape(-1, 2 * nr)  # (O, D, nty, th, ntx, [fw, re/im])
        y = (cols @ self.idft_w).view(o, d, nty * t, ntx * t)[:, :, :h, :w]
        if self.bias is not None:
            y = y + self.bias.view(-1, 1, 1, 1)
        return y[None]
