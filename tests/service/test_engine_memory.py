"""Decoding bounds memory (issue 12, fault 4): a real engine process, its RSS read from /proc.

A 70 kB PNG can declare 36 MP; decoding it must not cost the engine more than +300 MB at its peak, and the memory
must come back (within +50 MB of idle) once the reply is out.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.service.conftest import DATA, EngineProcess

MB = 1 << 20
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format="PNG")
    return out.getvalue()


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


UPLOADS = {
    "gray16": lambda: png(np.zeros((6000, 6000), np.uint16)),
    "rgba": lambda: png(np.zeros((6000, 6000, 4), np.uint8), "RGBA"),
}


@pytest.fixture(scope="module")
def lean_engine(tmp_path_factory: pytest.TempPathFactory):
    eng = EngineProcess(tmp_path_factory.mktemp("memory")).start()
    ok = eng.request({"v": 1, "cmd": "set_source", "image": (DATA / "s1.jpg").read_bytes()})  # lazy loads done
    assert ok["ok"], ok
    # A photo without a face runs the second (CNN) detector once; it loads lazily and stays, like the first.
    none = eng.request({"v": 1, "cmd": "set_source", "image": png(np.full((480, 640, 3), 128, np.uint8))})
    assert none["error"]["code"] == "no_face", none
    yield eng
    eng.stop()


@pytest.mark.parametrize("name", list(UPLOADS))
def test_a_large_in_limit_upload_keeps_rss_bounded_and_gives_it_back(lean_engine: EngineProcess, name: str) -> None:
    data = UPLOADS[name]()
    assert len(data) < 1_000_000
    pid = lean_engine.proc.pid  # type: ignore[union-attr]
    time.sleep(0.5)
    idle = status(pid)["VmRSS"]
    reset_peak(pid)
    reply = lean_engine.request({"v": 1, "cmd": "set_source", "image": data}, timeout_ms=60_000)
    assert reply["ok"] is False and reply["error"]["code"] == "no_face", reply  # decoded, then no face in it
    peak = status(pid)["VmHWM"]
    time.sleep(0.5)
    after = status(pid)["VmRSS"]
    print(f"{name}: idle {idle / MB:.0f} MB, peak +{(peak - idle) / MB:.0f} MB, after +{(after - idle) / MB:.0f} MB")
    assert peak - idle <= 300 * MB, f"peak +{(peak - idle) / MB:.0f} MB"
    assert after - idle <= 50 * MB, f"after +{(after - idle) / MB:.0f} MB"
