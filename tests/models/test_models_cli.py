"""The models CLI: verify against the pinned table or a given one, and download failing fast and clearly offline.

Runs the real CLI in a subprocess (as the container entrypoint does), against small synthetic checkpoints.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ModelsMissing, WeightsInvalid
from engine.liveportrait.testing import write_synthetic_models
from engine.models import download as dl
from engine.models import layout

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["appearance_feature_extractor.pth", "stitching_retargeting_module.pth"]
SMALL_PATHS = [layout.APPEARANCE, layout.STITCHING]


def run_cli(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "PYTHONPATH": str(ROOT), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "engine.models", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def small_models(tmp_path_factory) -> Path:
    return write_synthetic_models(tmp_path_factory.mktemp("models"), files=SMALL)


@pytest.fixture()
def table(small_models, tmp_path) -> Path:
    path = tmp_path / "table.json"
    path.write_text(dl.table_to_json(dl.describe(small_models, SMALL_PATHS, role="liveportrait")))
    return path


def test_verify_against_pinned_table_reports_each_file(small_models):
    proc = run_cli("verify", "--dir", str(small_models))
    assert proc.returncode == 2, proc.stderr  # present files of the wrong size: invalid
    err = proc.stderr
    assert f"{small_models / layout.APPEARANCE}: " in err and "expected 3387959" in err
    assert f"missing  {small_models / layout.WARPING}" in err  # absent files are listed too
    assert "python -m engine.models download --dir" in err and layout.HF_REPO in err


def test_verify_against_given_table_passes(small_models, table):
    proc = run_cli("verify", "--dir", str(small_models), "--table", str(table))
    assert proc.returncode == 0, proc.stderr
    assert "2 model files verified" in proc.stdout


def test_verify_catches_same_size_sha256_mismatch(small_models, table, tmp_path):
    models = tmp_path / "m"
    write_synthetic_models(models, files=SMALL)
    path = models / layout.APPEARANCE
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    proc = run_cli("verify", "--dir", str(models), "--table", str(table))
    assert proc.returncode == 2
    assert f"sha256   {path}: sha256 " in proc.stderr and "expected" in proc.stderr
    assert layout.STITCHING not in proc.stderr  # the good file is not blamed


def test_verify_missing_only_exits_1(tmp_path, table):
    proc = run_cli("verify", "--dir", str(tmp_path / "empty"), "--table", str(table))
    assert proc.returncode == 1
    assert f"missing  {tmp_path / 'empty' / layout.APPEARANCE}" in proc.stderr


def test_table_command_round_trips(small_models):
    proc = run_cli("table", "--dir", str(small_models), "--only", "liveportrait")
    assert proc.returncode == 1  # three of the five network files are absent
    rows = {r.path: r for r in dl.table_from_json(_write(small_models.parent / "t.json", proc.stdout))}
    assert set(rows) == set(SMALL_PATHS)
    assert rows[layout.APPEARANCE].size == (small_models / layout.APPEARANCE).stat().st_size


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_download_offline_fails_fast_and_says_what_is_missing(tmp_path):
    models = tmp_path / "models"
    proc = run_cli("download", "--dir", str(models), "--only", "face", "--no-progress",
                   env_extra={"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}, timeout=60)
    assert proc.returncode == 1, proc.stderr
    for path in (layout.SCRFD, layout.LANDMARK_106, layout.LANDMARK_203):
        assert str(models / path) in proc.stderr
    assert "could not download" in proc.stderr and "copy the files" in proc.stderr


def test_download_skips_the_network_when_everything_verifies(small_models, table):
    proc = run_cli("download", "--dir", str(small_models), "--table", str(table),
                   env_extra={"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"})
    assert proc.returncode == 0, proc.stderr
    assert "2 model files verified" in proc.stdout


def test_download_api_raises_models_missing(tmp_path):
    with pytest.raises(ModelsMissing, match="det_10g.onnx"):
        dl.download(tmp_path, [f for f in layout.FILES if f.role == "face"],
                    endpoint=f"http://127.0.0.1:{closed_port()}", progress=False)


def test_report_raises_weights_invalid_for_a_mismatch(small_models):
    report = dl.verify(small_models, [layout.BY_PATH[layout.APPEARANCE]])
    assert not report.ok and report.mismatched == [layout.APPEARANCE]
    with pytest.raises(WeightsInvalid, match="appearance_feature_extractor.pth"):
        report.raise_for_problems()


def test_bad_table_is_a_clear_error(tmp_path, small_models):
    bad = _write(tmp_path / "bad.json", '{"not": "a list"}')
    proc = run_cli("verify", "--dir", str(small_models), "--table", str(bad))
    assert proc.returncode == 2 and "not a table of model files" in proc.stderr
