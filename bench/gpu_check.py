"""The GPU check: one run prints what docs/scaling.md's sizing table needs, for the day a GPU is lent.

    python bench/gpu_check.py                          # CUDA, full size (the GPU day)
    python bench/gpu_check.py --device cpu --small     # the same path at a small size (tests/cluster runs it)
    python bench/gpu_check.py --models DIR --json out.json

It prints, in one run:
1. precision: fp32, bf16 and fp16 warp + decode of the golden inputs (tests/data/golden_golden-0.npz, made by the
   reference implementation on the synthetic golden-0 weights) against the golden image, and against our fp32;
2. CUDA graph vs eager warp + decode (ms, median and p99);
3. warp + decode and the full frame (keypoints, warp + decode, paste-back, JPEG) in ms, median and p99;
4. cold start to the first frame: load the networks, detect the face, prepare the avatar, draw, paste, encode;
5. avatars one GPU streams at 25 fps with no late tick, drawn one call per avatar per tick and one batched call per
   tick (warp + decode of all avatars at once), and the memory each resident avatar holds.

``--small`` (what a CPU can do in a test): the same calls on a 32x32 corner of the feature volume (a 256 px image,
resized to the crop before paste-back), one timed run per figure, capacity tried at 1 and 2 avatars over one tick;
the goldens are full size, so that run checks fp32 is finite only. bf16 and fp16 are measured on CUDA (the CPU
has no bf16 avg_pool3d kernel). Weights are the synthetic golden-0 set (written once into .bench/ unless --models
names a folder): the same shapes and arithmetic as the real weights, so the timings are the real network's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.animation.presets import preset_state  # noqa: E402
from engine.avatars import nbytes  # noqa: E402
from engine.codec import encode_jpeg  # noqa: E402
from engine.face.pasteback import PasteBack  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.liveportrait import LivePortrait  # noqa: E402
from engine.liveportrait.testing import GOLDEN_TAG, write_synthetic_models  # noqa: E402
from engine.render.liveportrait import PRECISIONS, LivePortraitRenderer, _GraphedWarpDecode  # noqa: E402
from engine.render.liveportrait.renderer import to_uint8  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "golden_golden-0.npz"
PORTRAIT = ROOT / "tests" / "data" / "astronaut.jpg"
FPS = 25.0
GOLDEN_ATOL_FP32 = 3e-3  # check_core.py's bound for the 512 image at fp32
SMALL_VOLUME = 32  # --small: a 32x32 corner of the 64x64 volume (a 256 px image; the hourglass needs 32)
CROP = 512  # the renderer's crop, what paste-back takes


def synthetic_models(folder: Path) -> Path:
    if not (folder / "COMPLETE").is_file():
        print(f"writing synthetic {GOLDEN_TAG} checkpoints into {folder} (once)", flush=True)
        write_synthetic_models(folder, GOLDEN_TAG)
        (folder / "COMPLETE").write_text(GOLDEN_TAG)
    return folder


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_ms(fn: Callable[[], Any], device: torch.device, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        out.append((time.perf_counter() - started) * 1000)
    return out


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def stats(values: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(values), "p99_ms": p99(values), "runs": len(values)}


def precision_check(models: Path, device: torch.device, golden: Any, crop: int | None,
                    fp32: LivePortrait | None = None) -> dict[str, dict[str, float]]:
    """Each precision's warp + decode of the golden inputs: vs the golden image (full size only) and vs our fp32.

    The feature volume comes from our fp32 appearance network for every precision (cast), so the rows compare the
    per-frame networks, warp + decode. ``crop``: a corner of the volume (the small run); no golden at that size."""
    x_s = torch.from_numpy(golden["x_s"]).float()
    x_d = torch.from_numpy(golden["x_d_stitched"]).float()
    want = torch.from_numpy(golden["image_512"]).float()
    # CUDA only for half precisions: the CPU has no bf16 avg_pool3d kernel (torch 2.13), and fp16 is a GPU format.
    names = ["fp32"] + (["bf16", "fp16"] if device.type == "cuda" else [])
    out: dict[str, dict[str, float]] = {}
    ours32: torch.Tensor | None = None
    feature: torch.Tensor | None = None
    for name in names:
        lp = fp32 if name == "fp32" and fp32 is not None else \
            LivePortrait.from_dir(models, device=device, dtype=PRECISIONS[name])
        with torch.inference_mode():
            if feature is None:  # fp32 comes first
                feature = lp.encode_source(np.asarray(golden["input_256"], np.uint8)).feature
                if crop is not None:
                    feature = feature[..., :crop, :crop].contiguous()
            image = lp.warp_decode(feature, x_s, x_d)["image"].float().cpu()
        row: dict[str, float] = {"finite": float(torch.isfinite(image).all())}
        if crop is None:
            d = (image - want).abs()
            row.update(max_vs_golden=float(d.max()), mean_vs_golden=float(d.mean()))
        if ours32 is None:
            ours32 = image
        else:
            row["max_vs_fp32"] = float((image - ours32).abs().max())
        out[name] = row
        del lp
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"),
                    help="precision of the timings (auto: fp16 on CUDA, fp32 on the CPU)")
    ap.add_argument("--models", type=Path, default=None, help="models folder (default: synthetic, in .bench/)")
    ap.add_argument("--small", action="store_true", help="a small size of the same path (a CPU in the test suite)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per figure (default 50; --small 2)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per capacity point (default 4)")
    ap.add_argument("--max-avatars", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype_name = args.dtype if args.dtype != "auto" else ("fp16" if device.type == "cuda" else "fp32")
    runs = args.runs or (1 if args.small else 50)
    ticks = 1 if args.small else int((args.seconds or 4.0) * FPS)
    warm = 0 if args.small else 1  # untimed first calls (the small run's cold start has warmed the path once)
    sizes = [1, 2] if args.small else [n for n in (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64) if n <= args.max_avatars]
    report: dict[str, Any] = {"device": str(device), "dtype": dtype_name, "small": args.small,
                              "torch": torch.__version__}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    print(f"gpu_check: torch {torch.__version__}, device {report.get('gpu', device)}, timings in {dtype_name}, "
          f"{'small' if args.small else 'full'} run ({runs} runs per figure, {ticks} ticks per capacity point)",
          flush=True)
    started_process = time.perf_counter()
    crop = SMALL_VOLUME if args.small else None
    models = args.models or synthetic_models(ROOT / ".bench" / f"lp-synthetic-{GOLDEN_TAG}")
    golden = np.load(GOLDEN)

    # 4 (measured first: nothing is warm yet). Cold start to the first frame.
    cold = time.perf_counter()
    renderer = LivePortraitRenderer.load(models, device=str(device), precision=dtype_name)
    faces = FacePipeline.create(models, "auto")
    face = faces.crop_bytes(PORTRAIT.read_bytes())
    source = renderer.prepare(face)
    paste = PasteBack(face)
    state = preset_state("happy", 0.8)
    core = renderer.core
    feature = source.feature if crop is None else source.feature[..., :crop, :crop].contiguous()
    x_s = source.x_s

    def frame() -> bytes:
        """The engine's frame path: keypoints, warp + decode, paste-back, JPEG (small run: the crop resized)."""
        with torch.inference_mode():
            x_d = renderer.driving_keypoints(source, state)
            image = to_uint8(core.warp_decode(feature, x_s, x_d)["image"])
        if image.shape[0] != CROP:
            image = cv2.resize(image, (CROP, CROP), interpolation=cv2.INTER_LINEAR)
        return encode_jpeg(paste.apply(image))

    jpeg = frame()
    report["cold_start_s"] = time.perf_counter() - cold
    print(f"cold start to the first frame: {report['cold_start_s']:.2f} s (load, detect with {faces.name}, prepare, "
          f"draw, paste, encode: {len(jpeg)} B JPEG)", flush=True)

    # 2 and 3. Warp + decode (eager, CUDA graph) and the full frame.
    x_d = renderer.driving_keypoints(source, state)
    with torch.inference_mode():
        eager = timed_ms(lambda: core.warp_decode(feature, x_s, x_d)["image"], device, runs + warm)[warm:]
        report["warp_decode_eager"] = stats(eager)
        print(f"warp + decode, eager:      median {statistics.median(eager):8.2f} ms  p99 {p99(eager):8.2f} ms",
              flush=True)
        if device.type == "cuda":
            graphed = _GraphedWarpDecode(core, tuple(feature.shape))
            graph = timed_ms(lambda: graphed(feature, x_s, x_d), device, runs + 1)[1:]
            report["warp_decode_cuda_graph"] = stats(graph)
            print(f"warp + decode, CUDA graph: median {statistics.median(graph):8.2f} ms  p99 {p99(graph):8.2f} ms "
                  f"({statistics.median(eager) / statistics.median(graph):.2f}x eager)", flush=True)
        else:
            print("warp + decode, CUDA graph: n/a (no CUDA)")
    full = timed_ms(frame, device, runs)
    report["full_frame"] = stats(full)
    print(f"full frame (keypoints, warp + decode, paste-back, JPEG): median {statistics.median(full):8.2f} ms  "
          f"p99 {p99(full):8.2f} ms", flush=True)
    report["avatar_bytes"] = {"renderer_state": nbytes(source), "paste_back": paste.nbytes}
    print(f"memory per resident avatar: {nbytes(source) / 2**20:.1f} MiB renderer state "
          f"(on {device}) + {paste.nbytes / 2**20:.1f} MiB paste-back (host)", flush=True)

    # 5. Avatars at 25 fps: one call per avatar per tick vs one batched call per tick.
    budget_ms = 1000.0 / FPS
    capacity = {"per_avatar": 0, "batched": 0}
    report["capacity_points"] = []
    print(f"avatars at {FPS:g} fps (warp + decode only; paste-back and JPEG run on CPU threads beside it):")
    print("  avatars  per-avatar calls: median ms/tick  late  |  one batched call: median ms/tick  late")
    with torch.inference_mode():
        for n in sizes:
            feats = feature.expand(n, *feature.shape[1:]).contiguous()
            xs, xd = x_s.expand(n, -1, -1).contiguous(), x_d.expand(n, -1, -1).contiguous()
            one = timed_ms(lambda n=n: [core.warp_decode(feature, x_s, x_d)["image"] for _ in range(n)], device,
                           ticks)
            batch = timed_ms(lambda f=feats, a=xs, b=xd: core.warp_decode(f, a, b)["image"], device,
                             ticks + warm)[warm:]
            late_one, late_batch = sum(t > budget_ms for t in one), sum(t > budget_ms for t in batch)
            report["capacity_points"].append({"avatars": n, "per_avatar_ms": statistics.median(one),
                                              "per_avatar_late": late_one, "batched_ms": statistics.median(batch),
                                              "batched_late": late_batch})
            print(f"  {n:7d}  {statistics.median(one):31.1f}  {late_one:4d}  |  {statistics.median(batch):31.1f}  "
                  f"{late_batch:4d}", flush=True)
            if late_one == 0:
                capacity["per_avatar"] = n
            if late_batch == 0:
                capacity["batched"] = n
            if late_one and late_batch:
                break
            del feats, xs, xd
    report["avatars_at_25fps"] = capacity
    print(f"avatars one {device.type.upper()} streams at {FPS:g} fps with no late tick: {capacity['per_avatar']} "
          f"(one call per avatar), {capacity['batched']} (one batched call per tick)"
          + (" [small run: not a sizing figure]" if args.small else ""), flush=True)

    # 1 (last: it loads the networks once per precision). Precision against the goldens and our fp32.
    report["precision"] = precision_check(models, device, golden, crop, core if dtype_name == "fp32" else None)
    for name, row in report["precision"].items():
        vs_golden = (f"max|d| vs golden {row['max_vs_golden']:.2e}, mean {row['mean_vs_golden']:.2e}"
                     if "max_vs_golden" in row else f"golden: full size only ({crop}x{crop} volume here)")
        vs32 = f"; max|d| vs our fp32 {row['max_vs_fp32']:.2e}" if "max_vs_fp32" in row else ""
        print(f"precision {name}: {vs_golden}{vs32}", flush=True)
    if device.type != "cuda":
        print("precision bf16, fp16: n/a on the CPU (no bf16 avg_pool3d kernel; fp16 is a GPU format)")
    report["total_s"] = time.perf_counter() - started_process
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    fp32 = report["precision"]["fp32"]
    ok = all(row["finite"] for row in report["precision"].values()) and \
        fp32.get("max_vs_golden", 0.0) <= GOLDEN_ATOL_FP32
    print(f"{'OK' if ok else 'FAIL'}: " + (f"fp32 max|d| vs golden {fp32['max_vs_golden']:.2e} "
                                           f"(<= {GOLDEN_ATOL_FP32:.0e}); " if "max_vs_golden" in fp32 else
                                           "every precision finite; ") + f"{report['total_s']:.1f} s in all")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
