"""bench/gpu_check.py keeps working without a GPU: its small run on the CPU goes through every section (cold start,
warp + decode, the full frame, memory per avatar, capacity per-avatar vs batched, precision) on the golden weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_gpu_check_small_run_on_the_cpu(golden_models: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--small",
                           "--models", str(golden_models), "--json", str(out)],
                          capture_output=True, text=True, timeout=880)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for line in ("cold start to the first frame", "warp + decode, eager", "CUDA graph: n/a (no CUDA)", "full frame",
                 "memory per resident avatar", "avatars one CPU streams at 25 fps", "precision fp32",
                 "precision bf16, fp16: n/a on the CPU", "OK: every precision finite"):
        assert line in proc.stdout, proc.stdout
    figures = json.loads(out.read_text())
    assert figures["small"] and figures["device"] == "cpu"
    assert [p["avatars"] for p in figures["capacity_points"]][:1] == [1]
    assert figures["avatar_bytes"]["renderer_state"] > 32 * 16 * 64 * 64 * 4  # the fp32 feature volume at least
    assert figures["precision"]["fp32"]["finite"] == 1.0
