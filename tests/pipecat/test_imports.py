"""The pipecat service is a client of the engine: importing it loads the engine's client and the small modules the
client shares (errors, constants, security), never the engine's renderers, animation, speech or workers."""

from __future__ import annotations

import subprocess
import sys

from tests.service.conftest import ROOT
from tests.service.test_bridge_imports import ALLOWED


def test_the_service_imports_only_the_engines_client() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys, engine.integrations.pipecat; "
                          "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('engine', 'bridge')))"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    ours = {m for m in out if m.startswith("engine.integrations")}
    assert "engine.integrations.pipecat.service" in ours
    assert set(out) - ours <= ALLOWED, sorted(set(out) - ours - ALLOWED)
