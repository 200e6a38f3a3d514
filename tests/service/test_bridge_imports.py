"""The bridge is a small HTTP process: importing it loads the engine's client and the few small modules that client
and the bridge share, never the engine's renderers, animation, speech or workers. Its core and the preview need no
numpy, torch, OpenCV or Pillow either; a feature that does media work (WHEP encodes video) may bring its own
libraries, but never the engine's modules: what it needs of the protocol belongs in engine/client/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# engine.* modules the bridge may load, each with why:
ALLOWED = {
    "engine",            # the package itself (its __init__ holds only the version)
    "engine.client",     # the one client of the engine protocol, one module per concern:
    *(f"engine.client.{m}" for m in ("aio", "cluster", "commands", "errors", "messages", "sockets", "subscribers",
                                     "sync")),
    "engine.security",   # CURVE keys (the client's sockets)
    "engine.errors",     # every error code, and their HTTP statuses
    "engine.constants",  # expressions, intensity range, audio limits: the seed form is checked before a round trip
    "engine.options",    # the Option-table machinery behind --help, LP_* variables and the README tables
    "engine.stats",      # percentile (stdlib): WHEP's and the feeds' lateness figures
    "engine.wav",        # the WAV header (stdlib): /api/speak sizes its timeout and refuses bad audio early
}
HEAVY = ("numpy", "torch", "cv2", "PIL", "scipy", "soxr", "onnxruntime", "dlib", "msgpack_numpy")


def imported(module: str) -> set[str]:
    """Every module ``python -X importtime -c 'import MODULE'`` loads (in a fresh interpreter)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stderr
    names = set()
    for line in out.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    assert module in names, out[-2000:]  # the parse found the module itself: it reads importtime's format
    return names


@pytest.mark.parametrize("module", ["bridge.app", "bridge.preview", "bridge.features", "bridge.__main__"])
def test_the_bridge_loads_only_the_engines_client_and_its_small_helpers(module: str) -> None:
    names = imported(module)
    engine = {n for n in names if n == "engine" or n.startswith("engine.")}
    assert engine <= ALLOWED, sorted(engine - ALLOWED)
    assert "engine.client" in engine


@pytest.mark.parametrize("module", ["bridge.app", "bridge.preview"])
def test_the_bridges_core_needs_no_numeric_or_image_library(module: str) -> None:
    heavy = sorted(n for n in imported(module) if n.split(".")[0] in HEAVY)
    assert not heavy, heavy
