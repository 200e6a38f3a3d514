"""Decoding bounds memory (issue 12, fault 4; issue 16): a real engine process and its prep process, RSS from /proc.

A 70 kB PNG can declare 36 MP; decoding it happens in the prep process (engine/prep.py), which must not cost more
than +300 MB at its peak and must give the memory back (within +50 MB of idle) once the reply is out; the engine
process itself, which only receives the reduced result, must stay within +50 MB throughout.
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
from tests.service.live import children

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
    (prep,) = lean_engine.request({"v": 1, "cmd": "health"})["prep"]["pids"]  # one prep process
    time.sleep(0.5)
    idle, prep_idle = status(pid)["VmRSS"], status(prep)["VmRSS"]
    reset_peak(pid)
    reset_peak(prep)
    reply = lean_engine.request({"v": 1, "cmd": "set_source", "image": data}, timeout_ms=60_000)
    assert reply["ok"] is False and reply["error"]["code"] == "no_face", reply  # decoded, then no face in it
    peak, prep_peak = status(pid)["VmHWM"], status(prep)["VmHWM"]
    time.sleep(0.5)
    after, prep_after = status(pid)["VmRSS"], status(prep)["VmRSS"]
    assert prep in children(pid), "the prep process was replaced: it died decoding"
    print(f"{name}: prep process idle {prep_idle / MB:.0f} MB, peak +{(prep_peak - prep_idle) / MB:.0f} MB, "
          f"after +{(prep_after - prep_idle) / MB:.0f} MB; engine idle {idle / MB:.0f} MB, "
          f"peak +{(peak - idle) / MB:.0f} MB, after +{(after - idle) / MB:.0f} MB")
    assert prep_peak - prep_idle > 50 * MB, "the decode did not happen in the prep process"
    assert prep_peak - prep_idle <= 300 * MB, f"prep peak +{(prep_peak - prep_idle) / MB:.0f} MB"
    assert prep_after - prep_idle <= 50 * MB, f"prep after +{(prep_after - prep_idle) / MB:.0f} MB"
    assert peak - idle <= 50 * MB, f"the engine's peak grew +{(peak - idle) / MB:.0f} MB"
    assert after - idle <= 50 * MB, f"engine after +{(after - idle) / MB:.0f} MB"
