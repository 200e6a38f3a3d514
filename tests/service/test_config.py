"""Settings: flag > env > default, one table behind --help and the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import BRIDGE_OPTIONS, bridge_settings
from engine.config import ENGINE_OPTIONS, engine_settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_precedence_flag_over_env_over_default() -> None:
    assert engine_settings([], {}).default_fps == 10.0
    assert engine_settings([], {"LP_DEFAULT_FPS": "25"}).default_fps == 25.0
    assert engine_settings(["--default-fps", "30"], {"LP_DEFAULT_FPS": "25"}).default_fps == 30.0
    assert engine_settings([], {"LP_WARMUP": "off"}).warmup is False
    assert bridge_settings(["--port", "9000"], {"LP_BRIDGE_PORT": "9100"}).port == 9000


def test_bad_env_values_exit_like_bad_flags() -> None:
    with pytest.raises(SystemExit):
        engine_settings([], {"LP_RENDERER": "magic"})
    with pytest.raises(SystemExit):
        engine_settings([], {"LP_MAX_FPS": "fast"})


def test_readme_lists_every_option_and_help_names_every_env() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table(ENGINE_OPTIONS) in readme
    assert markdown_table(BRIDGE_OPTIONS) in readme
    from bridge.features import FEATURES

    feature_options = tuple(opt for feature in FEATURES for opt in feature.options)
    for feature in FEATURES:  # a bridge feature's options (WHEP's, ...) are in --help and in a README table of theirs
        if feature.options:
            assert markdown_table(feature.options) in readme, feature.name
    for module, options in (("engine", ENGINE_OPTIONS), ("bridge", BRIDGE_OPTIONS + feature_options)):
        text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                              cwd=ROOT).stdout
        for opt in options:
            assert opt.flag in text and opt.env in text, opt.env


def test_option_tables_and_settings_dataclasses_agree() -> None:
    from dataclasses import fields

    from bridge.config import BridgeSettings
    from engine.config import Settings

    for cls, options in ((Settings, ENGINE_OPTIONS), (BridgeSettings, BRIDGE_OPTIONS)):
        defaults = {f.name: f.default for f in fields(cls)}
        assert defaults == {opt.field: opt.default for opt in options}, cls.__name__
