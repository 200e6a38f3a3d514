"""Render docs/arkit_sheet.png: each of ARKit's 52 blendshapes at 1.0 on three portraits (offline renderer).

    python tools/arkit_sheet.py [--out docs/arkit_sheet.png] [--tile 84] [portraits...]

Each cell is one name: the three portraits side by side, under the name; the first cell is the neutral source.
The names go through the same parser a client's controls do (engine/animation/arkit.py), so what shows here is what
an ARKit stream at 1.0 gets. Tiles are the face crop box of tools/contact_sheet.py, downscaled so the PNG stays
small enough to commit.
"""

from __future__ import annotations

import argparse
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

DEFAULT_PORTRAITS = ("tests/data/s1.jpg", "tests/data/s11.jpg", "tests/data/s7.jpg")
PER_ROW = 4  # cells (names) per row of the sheet
LABEL = 16  # px of label above each cell


def arkit_state(name: str, weight: float = 1.0) -> AnimationState:
    """One ARKit name at a weight, as a client's controls become a state."""
    controls, _ = parse_controls({name: weight})
    return AnimationState(name, 1.0, {**NEUTRAL, **controls})


def face_box(lm: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The face with room for raised brows (as tools/contact_sheet.py frames it)."""
    centre = (lm.min(0) + lm.max(0)) / 2 - (0.0, 0.05 * float(np.ptp(lm[:, 1])))
    half = int(0.62 * float(np.ptp(lm, axis=0).max()))
    x0, y0 = (np.round(centre).astype(int) - half).clip(0)
    return int(x0), int(y0), min(int(x0) + 2 * half, shape[1]), min(int(y0) + 2 * half, shape[0])


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("portraits", nargs="*", type=Path, help="portrait files (default: three from tests/data)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "arkit_sheet.png")
    parser.add_argument("--tile", type=int, default=84, help="tile side in pixels")
    args = parser.parse_args(argv)
    paths = args.portraits or [ROOT / p for p in DEFAULT_PORTRAITS]
    sheet = render_sheet(paths, args.tile)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
