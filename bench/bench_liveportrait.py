"""Warp + decode ms per frame: our LivePortrait core, and the reference implementation beside it.

    python bench/bench_liveportrait.py                              # CPU float32, 2 threads, synthetic weights
    python bench/bench_liveportrait.py --reference /tmp/lp_ref      # + the reference (a KwaiVGI/LivePortrait
                                                                    #   checkout), interleaved run by run
    python bench/bench_liveportrait.py --device cuda                # fp16 with and without a CUDA graph

Both implementations load the same synthetic checkpoints (the test kit's golden-0 weights, written once into
.bench/) and warp the same source volume with the golden's keypoints. On a shared machine the runs of the two are
interleaved, so load from other work hits both alike. Prints the median of --runs timed runs after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.liveportrait import LivePortrait  # noqa: E402
from engine.liveportrait.testing import GOLDEN_TAG, write_synthetic_models  # noqa: E402
from engine.models import layout  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "golden_golden-0.npz"


def synthetic_models(folder: Path) -> Path:
    done = folder / "COMPLETE"
    if not done.is_file():
        print(f"writing synthetic {GOLDEN_TAG} checkpoints into {folder} (once, ~20 s)")
        write_synthetic_models(folder, GOLDEN_TAG)
        done.write_text(GOLDEN_TAG)
    return folder


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, torch.Tensor]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return (time.perf_counter() - start) * 1000, out


class Reference:
    """The reference's warping module and SPADE decoder, built from its models.yaml, on the same checkpoints."""

    def __init__(self, checkout: Path, models: Path, device: torch.device) -> None:
        import yaml

        sys.path.insert(0, str(checkout))
        from src.modules.spade_generator import SPADEDecoder  # type: ignore[import-not-found]
        from src.modules.warping_network import WarpingNetwork  # type: ignore[import-not-found]

        params = yaml.safe_load((checkout / "src" / "config" / "models.yaml").read_text())["model_params"]
        self.warping = WarpingNetwork(**params["warping_module_params"])
        self.generator = SPADEDecoder(**params["spade_generator_params"])
        for net, path in ((self.warping, layout.WARPING), (self.generator, layout.SPADE)):
            net.load_state_dict(torch.load(models / path, map_location="cpu", weights_only=True))
            net.eval().to(device)

    @torch.no_grad()
    def warp_decode(self, feature: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        out = self.warping(feature, kp_source=x_s, kp_driving=x_d)
        return self.generator(feature=out["out"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=None, help="models folder (default: synthetic, in .bench/)")
    ap.add_argument("--reference", type=Path, default=None, help="a KwaiVGI/LivePortrait checkout to compare with")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--dtype", default="fp16", choices=("fp16", "bf16"), help="CUDA precision")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = args.models or synthetic_models(ROOT / ".bench" / f"lp-synthetic-{GOLDEN_TAG}")

    g = np.load(GOLDEN)
    x_s = torch.from_numpy(g["x_s"]).float().to(device)
    x_d = torch.from_numpy(g["x_d_stitched"]).float().to(device)
    golden_image = torch.from_numpy(g["image_512"]).float()
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, runs {args.runs}")

    lp32 = LivePortrait.from_dir(models, device=device, dtype=torch.float32)
    feature = lp32.encode_source(np.asarray(g["input_256"], np.uint8)).feature
    candidates: dict[str, Callable[[], torch.Tensor]] = {
        "ours fp32": lambda: lp32.warp_decode(feature, x_s, x_d)["image"],
    }
    if args.reference is not None:
        ref = Reference(args.reference, models, device)
        candidates["reference fp32"] = lambda: ref.warp_decode(feature, x_s, x_d)
    if device.type == "cuda":
        from engine.render.liveportrait import PRECISIONS, _GraphedWarpDecode

        lp16 = LivePortrait.from_dir(models, device=device, dtype=PRECISIONS[args.dtype])
        lp16.generator.to(memory_format=torch.channels_last)
        f16 = feature.to(lp16.dtype)
        candidates[f"ours {args.dtype}"] = lambda: lp16.warp_decode(f16, x_s, x_d)["image"]
        graphed = _GraphedWarpDecode(lp16, tuple(f16.shape))
        candidates[f"ours {args.dtype} + CUDA graph"] = lambda: graphed(f16, x_s, x_d)

    times: dict[str, list[float]] = {name: [] for name in candidates}
    images: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for name, fn in candidates.items():  # warm-up
            _, images[name] = timed(fn, device)
        for _ in range(args.runs):
            for name, fn in candidates.items():
                ms, _ = timed(fn, device)
                times[name].append(ms)

    header = f"{'warp + decode, batch 1':34s} {'median ms':>10s} {'min ms':>9s} {'max ms':>9s}"
    print(f"{header}  max|d| vs golden  runs (ms)")
    for name, ts in times.items():
        diff = (images[name].float().cpu() - golden_image).abs().max().item()
        runs = " ".join(f"{t:.0f}" for t in ts)
        print(f"{name:34s} {statistics.median(ts):10.1f} {min(ts):9.1f} {max(ts):9.1f}  {diff:.2e}          {runs}")
    if "reference fp32" in times:
        ratio = statistics.median(times["reference fp32"]) / statistics.median(times["ours fp32"])
        same = (images["ours fp32"].float().cpu() - images["reference fp32"].float().cpu()).abs().max().item()
        print(f"speed-up of ours over the reference (median / median): {ratio:.2f}x; "
              f"max|d| ours vs reference {same:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
