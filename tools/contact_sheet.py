"""Render the offline renderer's contact sheet: a row per expression or control, a column per portrait.

    python tools/contact_sheet.py [--out docs/contact_sheet.png] [--tile 160] [portraits...]

Columns are the README's portraits (three photos, a painting and a 3-D cartoon). Rows: the source, each expression
at intensity 0.5 and 1.0, a blink, a wink (the face's left eye only), eyes wide, gaze left/right/up/down and an
open mouth, so one expression can be compared across faces at a glance.
Tiles are the face (its landmarks' box with room for raised brows), downscaled so the PNG stays small enough to
commit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.animation.controls import NEUTRAL  # noqa: E402
from engine.animation.presets import preset_state  # noqa: E402
from engine.animation.state import AnimationState  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402

DEFAULT_PORTRAITS = ("tests/data/astronaut.jpg", "tests/data/s1.jpg", "tests/data/s11.jpg", "tests/data/s5.jpg",
                     "tests/data/s7.jpg")


def control(label: str, **values: float) -> tuple[str, AnimationState]:
    return label, AnimationState(label, 1.0, {**NEUTRAL, **values})


def rows() -> list[tuple[str, AnimationState | None]]:
    """The sheet's rows: a label and the state to render (None for the source crop)."""
    out: list[tuple[str, AnimationState | None]] = [("source", None)]
    for expression in ("happy", "sad", "surprised"):
        for intensity in (0.5, 1.0):
            out.append((f"{expression} {intensity:g}", preset_state(expression, intensity)))
    out += [control("blink", eyeBlink=1.0), control("wink", eyeBlinkLeft=1.0), control("eyes wide", eyeWide=1.0),
            control("look left", gazeX=-1.0), control("look right", gazeX=1.0), control("look up", gazeY=1.0),
            control("look down", gazeY=-1.0), control("mouth open", jawOpen=0.8)]
    return out


def face_box(lm: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The face in a crop, with room for raised brows: (x0, y0, x1, y1)."""
    centre = (lm.min(0) + lm.max(0)) / 2 - (0.0, 0.05 * float(np.ptp(lm[:, 1])))
    half = int(0.62 * float(np.ptp(lm, axis=0).max()))
    x0, y0 = (np.round(centre).astype(int) - half).clip(0)
    return int(x0), int(y0), min(int(x0) + 2 * half, shape[1]), min(int(y0) + 2 * half, shape[0])


def render_sheet(paths: list[Path], tile: int) -> np.ndarray:
    """The sheet as one RGB image: a label column on the left, one row per expression, one column per portrait."""
    pipeline = FacePipeline.create(mode="dlib")
    renderer = OfflineRenderer()
    sheet_rows = rows()
    columns = []
    for path in paths:
        face = pipeline.crop(decode_image(path.read_bytes()))
        source = renderer.prepare(face)
        x0, y0, x1, y1 = face_box(face.crop_landmarks, face.crop.shape)
        tiles = []
        for _, state in sheet_rows:
            img = face.crop if state is None else renderer.render(source, state)
            tiles.append(cv2.resize(img[y0:y1, x0:x1], (tile, tile), interpolation=cv2.INTER_AREA))
        columns.append(np.vstack(tiles))
    label = np.full((tile * len(sheet_rows), 96, 3), 255, np.uint8)
    for i, (name, _) in enumerate(sheet_rows):
        cv2.putText(label, name, (4, i * tile + tile // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.hstack([label, *columns])


def sheet_main(render: Callable[[list[Path], int], np.ndarray], out: Path, tile: int,
               portraits: Sequence[str], argv: list[str] | None, description: str) -> int:
    """The command line of a sheet tool: portraits (default ``portraits``), --out, --tile; writes the PNG."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("portraits", nargs="*", type=Path, help=f"portrait files (default: {', '.join(portraits)})")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--tile", type=int, default=tile, help="tile side in pixels")
    args = parser.parse_args(argv)
    sheet = render(args.portraits or [ROOT / p for p in portraits], args.tile)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {sheet.shape[1]}x{sheet.shape[0]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return sheet_main(render_sheet, ROOT / "docs" / "contact_sheet.png", 90, DEFAULT_PORTRAITS, argv,
                      __doc__.split("\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
