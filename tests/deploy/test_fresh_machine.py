"""A fresh machine: `make test` installs what the tests use, and in CI a skipped test fails the run.

tools/system-deps.sh runs for real with bash, against stand-ins for the system's dpkg, apt-get and id (a test cannot
uninstall node from the machine): what it would install, and what it tells a user who is not root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "system-deps.sh"
TOOLS = ("bash", "readlink", "cut", "grep", "head", "cat", "printf", "env")

DPKG = """#!/bin/bash
# dpkg -s PKG: installed when listed in $INSTALLED; dpkg -S FILE: $NODE_OWNER owns node; dpkg -L PKG: $OWNER_FILES
case "$1" in
  -s) for p in $INSTALLED; do [ "$p" = "$2" ] && exit 0; done; exit 1 ;;
  -S) case "$2" in */node) [ -n "$NODE_OWNER" ] && { echo "$NODE_OWNER: $2"; exit 0; } ;;
                   */python3) echo "python3-minimal: $2"; exit 0 ;; esac; exit 1 ;;
  -L) printf '%s\\n' $OWNER_FILES ;;
esac
"""


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(body)
    path.chmod(0o755)


def run_deps(tmp_path: Path, *, installed: str, node: str | None, npm: bool = False, node_owner: str = "",
             owner_files: str = "", uid: int = 0, profile: str = "test", py: str = "python3",
             ) -> tuple[int, str, list[str]]:
    """system-deps.sh on a PATH of stand-ins; returns its exit status, its output and the apt-get calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        real = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if real.startswith("/"):
            (bin_dir / tool).symlink_to(real)
    log = tmp_path / "apt.log"
    stub(bin_dir, "dpkg", DPKG)
    stub(bin_dir, "apt-get", f'#!/bin/bash\necho "$*" >> {log}\n')
    stub(bin_dir, "id", f"#!/bin/bash\necho {uid}\n")
    stub(bin_dir, "python3", f'#!/bin/bash\nexec {sys.executable} "$@"\n')  # a python3 with venv, like Debian's
    if node is not None:
        stub(bin_dir, "node", "#!/bin/bash\necho v20\n")
    if npm:
        stub(bin_dir, "npm", "#!/bin/bash\necho 10\n")
    env = {"PATH": str(bin_dir), "INSTALLED": installed, "NODE_OWNER": node_owner, "OWNER_FILES": owner_files,
           "HOME": str(tmp_path), "PY": py}
    done = subprocess.run([str(bin_dir / "bash"), str(SCRIPT), profile], env=env, capture_output=True, text=True,
                          timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stdout + done.stderr, calls


ALL = "espeak-ng festival festvox-us-slt-hts festvox-kdlpc16k sox chromium firefox-esr"


def test_nothing_missing_installs_nothing(tmp_path: Path) -> None:
    assert run_deps(tmp_path, installed=ALL, node="v20", npm=True) == (0, "", [])


def test_a_fresh_machine_gets_everything(tmp_path: Path) -> None:
    rc, out, calls = run_deps(tmp_path, installed="", node=None)
    assert rc == 0, out
    install = next(c for c in calls if c.startswith("install"))
    for pkg in ("espeak-ng", "festival", "festvox-us-slt-hts", "festvox-kdlpc16k", "sox", "chromium", "firefox-esr",
                "nodejs", "npm"):
        assert pkg in install.split(), install


def test_debian_node_without_npm_gets_debians_npm(tmp_path: Path) -> None:
    rc, out, calls = run_deps(tmp_path, installed=ALL, node="v18", node_owner="nodejs",
                              owner_files="/usr/bin/node /usr/share/doc/nodejs")
    assert rc == 0, out
    assert calls[-1].split()[-1] == "npm" and "--reinstall" not in calls[-1], calls


def test_nodesource_node_without_npm_is_reinstalled_not_given_debians_npm(tmp_path: Path) -> None:
    """NodeSource's nodejs ships npm and conflicts with Debian's npm package: reinstall it instead."""
    rc, out, calls = run_deps(tmp_path, installed=ALL, node="v20", node_owner="nodejs",
                              owner_files="/usr/bin/node /usr/lib/node_modules/npm/bin/npm-cli.js")
    assert rc == 0, out
    assert any("--reinstall" in c and c.split()[-1] == "nodejs" for c in calls), calls
    assert not any("npm" in c.split() for c in calls), calls


def test_a_node_apt_does_not_know_without_npm_is_a_clear_error(tmp_path: Path) -> None:
    rc, out, calls = run_deps(tmp_path, installed=ALL, node="v22")
    assert rc == 1 and "not a Debian package" in out and calls == []


def test_not_root_gets_one_line_saying_what_to_run(tmp_path: Path) -> None:
    rc, out, calls = run_deps(tmp_path, installed="festival festvox-us-slt-hts festvox-kdlpc16k sox chromium",
                              node="v20", npm=True, uid=1000)
    assert rc == 1 and calls == []
    assert out.count("\n") == 1 and "espeak-ng firefox-esr" in out
    assert "sudo bash tools/system-deps.sh test" in out


def test_make_run_asks_only_for_what_running_needs(tmp_path: Path) -> None:
    assert run_deps(tmp_path, installed="", node=None, uid=1000, profile="run") == (0, "", [])


def test_no_python_gets_python_and_venv(tmp_path: Path) -> None:
    rc, out, calls = run_deps(tmp_path, installed="", node=None, profile="run", py="python3.missing")
    assert rc == 0, out
    assert calls[-1].split()[-2:] == ["python3", "python3-venv"], calls


def test_make_and_ci_call_it() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "tools/system-deps.sh test" in makefile and "tools/system-deps.sh run" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


# ------------------------------------------------------------------------------------------- skips fail in CI

SKIPPING = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="no such browser here")
def test_needs_a_browser():
    pass
'''


def run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_some.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_some.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_in_ci_a_skip_fails_the_run_and_is_named(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "test_some.py::test_needs_a_browser: no such browser here" in done.stdout, done.stdout
    assert "1 passed, 1 skipped" in done.stdout


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_outside_ci_a_skip_is_a_skip(tmp_path: Path, ci: str | None) -> None:
    done = run_pytest(tmp_path, ci)
    assert done.returncode == 0, done.stdout
    assert "a skipped test fails the run" not in done.stdout
