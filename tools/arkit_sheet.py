"""Render docs/arkit_sheet.png: each of ARKit's 52 blendshapes at 1.0 on three portraits (offline renderer).

    python tools/arkit_sheet.py [--out docs/arkit_sheet.png] [--tile 84] [portraits...]

Each cell is one name: the three portraits side by side, under the name; the first cell is the neutral source.
The names go through the same parser a client's controls do (engine/animation/arkit.py), so what shows here is what
an ARKit stream at 1.0 gets. Tiles are the face crop box of tools/contact_sheet.py, downscaled so the PNG stays
small enough to commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.animation.arkit import ARKIT_NAMES, parse_controls  # noqa: E402
from engine.animation.controls import NEUTRAL  # noqa: E402
from engine.animation.state import AnimationState  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402
from tools.contact_sheet import face_box, sheet_main  # noqa: E402

DEFAULT_PORTRAITS = ("tests/data/s1.jpg", "tests/data/s11.jpg", "tests/data/s7.jpg")
PER_ROW = 4  # cells (names) per row of the sheet
LABEL = 16  # px of label above each cell


def arkit_state(name: str, weight: float = 1.0) -> AnimationState:
    """One ARKit name at a weight, as a client's controls become a state."""
    controls, _ = parse_controls({name: weight})
    return AnimationState(name, 1.0, {**NEUTRAL, **controls})


def render_sheet(paths: list[Path], tile: int) -> np.ndarray:
    pipeline = FacePipeline.create(mode="dlib")
    renderer = OfflineRenderer()
    names: list[str | None] = [None, *ARKIT_NAMES]
    cells: dict[str | None, list[np.ndarray]] = {n: [] for n in names}
    for path in paths:
        face = pipeline.crop(decode_image(path.read_bytes()))
        source = renderer.prepare(face)
        x0, y0, x1, y1 = face_box(face.crop_landmarks, face.crop.shape)
        for name in names:
            img = face.crop if name is None else renderer.render(source, arkit_state(name))
            cells[name].append(cv2.resize(img[y0:y1, x0:x1], (tile, tile), interpolation=cv2.INTER_AREA))
    width = len(paths) * tile
    blocks = []
    for name in names:
        label = np.full((LABEL, width, 3), 255, np.uint8)
        cv2.putText(label, name or "(neutral source)", (3, LABEL - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
        block = np.vstack([label, np.hstack(cells[name])])
        blocks.append(np.pad(block, ((0, 4), (0, 4), (0, 0)), constant_values=255))
    while len(blocks) % PER_ROW:
        blocks.append(np.full_like(blocks[0], 255))
    return np.vstack([np.hstack(blocks[i:i + PER_ROW]) for i in range(0, len(blocks), PER_ROW)])


def main(argv: list[str] | None = None) -> int:
    return sheet_main(render_sheet, ROOT / "docs" / "arkit_sheet.png", 84, DEFAULT_PORTRAITS, argv,
                      __doc__.split("\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
