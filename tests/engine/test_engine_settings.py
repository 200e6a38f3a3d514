"""Settings: one owner per default, unknown options refused, conflicts refused at start-up (issue 12, item 2/3)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import protocol as p
from engine.animation import timeline
from engine.config import ENGINE_OPTIONS, Option, Settings, engine_settings, load
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class _Small:
    a: int = 1


def test_an_option_without_a_field_is_an_error_not_dropped() -> None:
    options = (Option("a", "--a", "T_A", int, 1, "a"), Option("b", "--b", "T_B", int, 2, "b"))
    with pytest.raises(ConfigError, match="b"):
        load(_Small, options, [], {}, "t", "t")


def test_limits_have_one_owner() -> None:
    assert p.SetExpression("a", "happy").transition_ms == timeline.DEFAULT_TRANSITION_MS
    assert p.MAX_TRANSITION_MS is timeline.MAX_TRANSITION_MS
    assert Settings().max_fps == p.DEFAULT_MAX_FPS == {o.field: o for o in ENGINE_OPTIONS}["max_fps"].default


def test_conflicting_settings_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        engine_settings(["--renderer", "offline", "--face-detector", "onnx"], {})
    with pytest.raises(ConfigError):
        engine_settings(["--default-fps", "0.00001"], {})


def test_conflicting_settings_stop_the_process_at_start_up() -> None:
    run = subprocess.run([sys.executable, "-m", "engine", "--renderer", "offline", "--face-detector", "onnx"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "dlib" in run.stderr


def test_help_lists_the_choices() -> None:
    text = subprocess.run([sys.executable, "-m", "engine", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60).stdout
    assert "auto,liveportrait,offline" in text and "full,crop" in text
