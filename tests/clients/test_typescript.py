"""The TypeScript client's own tests (node --test) against a real engine and bridge, run from pytest so CI runs them.

The Node tests start the engine and the bridge themselves with LP_PYTHON (this interpreter), on free loopback ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"

pytestmark = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                reason="node and npm are not installed (Debian: apt-get install nodejs npm)")


def npm(*args: str, timeout: float) -> None:
    """Run one npm command in the package; a failure shows npm's own output, which is what says what broke."""
    env = {**os.environ, "LP_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(["npm", *args], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"npm {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-12000:]}\n{proc.stderr[-6000:]}",
                    pytrace=False)


def installed() -> bool:
    """node_modules matches package-lock.json (npm writes its own copy of the lock into node_modules)."""
    marker = PACKAGE / "node_modules" / ".package-lock.json"
    return marker.is_file() and marker.stat().st_mtime >= (PACKAGE / "package-lock.json").stat().st_mtime


@pytest.mark.timeout(900)
def test_typescript_client_against_real_engine() -> None:
    if not installed():
        npm("ci", "--no-audit", "--no-fund", timeout=600)
    npm("run", "build", timeout=300)
    npm("test", timeout=600)
