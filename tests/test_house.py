"""The bars of the house (docs/architecture.md): no class grows past MAX_CLASS_LINES; a room that does is split by
job, as the cluster's Router was."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_CLASS_LINES = 250
PACKAGES = ("engine", "bridge")


def class_sizes() -> list[tuple[int, str]]:
    sizes = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    sizes.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.name}"))
    return sizes


def test_no_class_is_over_the_bar() -> None:
    sizes = class_sizes()
    assert len(sizes) > 50  # it read the house
    too_big = sorted((n, where) for n, where in sizes if n > MAX_CLASS_LINES)
    assert not too_big, f"classes over {MAX_CLASS_LINES} lines (split them by job): {too_big}"
