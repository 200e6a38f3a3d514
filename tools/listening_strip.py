"""Render docs/listening_strip.png: the offline renderer's face listening to espeak-ng speech with pauses.

    python tools/listening_strip.py [--out docs/listening_strip.png] [--portrait tests/data/s1.jpg]

The user's voice (three phrases: two statements and a question, each followed by a 1.6 s pause) is fed to an
Animator in the listening state as 100 ms microphone chunks at their real-time engine times, as `user_audio` does.
Every frame at 25 fps is rendered and read back by dlib's landmarks (tests/service/facemeter.py). The plot shows
the head pitch measured on the frames (black) and the engine's own headPitch (red, thin), the brows measured
(blue), the user's talk (grey bands), and the listener's nods (red ticks) and question raises (blue ticks); under it,
frames at the moments named in their labels.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_listen import RATE, voice_signal  # noqa: E402
from engine.animation.controls import NEUTRAL  # noqa: E402
from engine.animation.state import AnimationState  # noqa: E402
from engine.animation.timeline import Animator, IdleConfig  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402
from tests.service.facemeter import FaceMeter  # noqa: E402

SCRIPT = [("I went to the market this morning and bought some bread.", 1.6), ("Then I walked home slowly.", 1.6),
          ("Is that true?", 1.6)]
CHUNK_S, FPS = 0.1, 25.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "listening_strip.png")
    parser.add_argument("--portrait", type=Path, default=ROOT / "tests" / "data" / "s1.jpg")
    parser.add_argument("--seed", type=int, default=11, help="idle life's seed")
    args = parser.parse_args(argv)

    face = FacePipeline.create(mode="dlib").crop(decode_image(args.portrait.read_bytes()))
    renderer = OfflineRenderer()
    source = renderer.prepare(face)

    def draw(controls: dict[str, float]) -> np.ndarray:
        return renderer.render(source, AnimationState("t", 1.0, {**NEUTRAL, **controls}))

    meter = FaceMeter(draw({}))
    meter.calibrate(draw({"headPitch": -4.0}), -4.0)
    with tempfile.TemporaryDirectory() as tmp:
        x, talk = voice_signal(Path(tmp), "en", 50, SCRIPT)  # espeak-ng's own default pitch
    animator = Animator(IdleConfig(enabled=True, seed=args.seed), 0.0)
    animator.turn.set("listening", 0.0)
    n = int(CHUNK_S * RATE)
    for i in range(0, len(x), n):  # a microphone in real time: each chunk heard up to its end
        animator.turn.listener.hear(x[i:i + n], RATE, (i + len(x[i:i + n])) / RATE)
    times = np.arange(0.0, len(x) / RATE, 1.0 / FPS)
    frames, pitch, commanded, brow = [], [], [], []
    for t in times:
        state = animator.sample(float(t))
        img = renderer.render(source, state)
        r = meter.read(img)
        frames.append(img)
        pitch.append(meter.degrees(r) if r.open_eye > 0.7 * meter.neutral.open_eye else np.nan)
        commanded.append(state.controls["headPitch"])
        brow.append(r.brow - meter.neutral.brow)
    events = animator.turn.listener.events
    nod_s = animator.turn.listener.config.nod_s
    sheet = np.vstack([plot(times, np.array(pitch), np.array(commanded), np.array(brow), talk, events, nod_s),
                       tiles(times, frames, talk, events, nod_s)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB); talk {talk}; events {events}")
    return 0


def plot(times: np.ndarray, pitch: np.ndarray, commanded: np.ndarray, brow: np.ndarray,
         talk: list[tuple[float, float]], events: list, nod_s: float, width: int = 1200, height: int = 300
         ) -> np.ndarray:
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 50, 10, 30, 40
    span = times[-1]

    def px(t: float) -> int:
        return int(left + (width - left - right) * t / span)

    lo, hi = -5.0, 3.0  # degrees on the y axis

    def py(v: float) -> int:
        return int(top + (height - top - bottom) * (hi - v) / (hi - lo))

    for a, b in talk:
        cv2.rectangle(img, (px(a), top), (px(b), height - bottom), (225, 225, 225), -1)
        cv2.putText(img, "user talks", (px(a) + 4, top + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (90, 90, 90), 1,
                    cv2.LINE_AA)
    for v in range(int(lo), int(hi) + 1):
        cv2.line(img, (left, py(v)), (width - right, py(v)), (240, 240, 240) if v else (170, 170, 170), 1)
        cv2.putText(img, f"{v:+d}", (8, py(v) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for s in range(int(span) + 1):
        cv2.putText(img, f"{s}s", (px(s) - 6, height - bottom + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)

    def curve(values: np.ndarray, color: tuple[int, int, int], thick: int) -> None:
        pts = [(px(t), py(v)) for t, v in zip(times, values, strict=True) if np.isfinite(v)]
        for p0, p1 in zip(pts, pts[1:], strict=False):
            cv2.line(img, p0, p1, color, thick, cv2.LINE_AA)

    curve(commanded, (220, 60, 60), 1)
    curve(pitch, (0, 0, 0), 2)
    curve(brow * 40.0, (40, 90, 230), 1)  # brows: iod x 40, so 0.05 iod reads as 2 on the axis
    for e in events:
        t = e.start + (nod_s / 2 if e.kind == "nod" else 0.4)
        color = (220, 40, 40) if e.kind == "nod" else (40, 90, 230)
        cv2.line(img, (px(t), height - bottom), (px(t), height - bottom - 12), color, 2)
        cv2.putText(img, e.kind, (px(t) - 10, height - bottom - 16), cv2.FONT_HERSHEY_SIMPLEX, 0.38, color, 1,
                    cv2.LINE_AA)
    cv2.putText(img, "head pitch, degrees: measured on the frames (black), engine headPitch (red); brows measured "
                "(blue, iod x 40); grey: the user talks", (left, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                cv2.LINE_AA)
    return img


def tiles(times: np.ndarray, frames: list[np.ndarray], talk: list[tuple[float, float]], events: list,
          nod_s: float, width: int = 1200) -> np.ndarray:
    nods = [e.start + nod_s / 2 for e in events if e.kind == "nod"]
    brows = [e.start + 0.4 for e in events if e.kind == "brow"]
    picks = [((talk[0][0] + talk[0][1]) / 2, "user talks")]
    picks += [(t, "nod (deepest)") for t in nods[:2]]
    picks += [((talk[1][0] + talk[1][1]) / 2, "user talks")]
    picks += [(t, "question: brows") for t in brows[:1]]
    picks += [(times[-1] - 0.1, "end")]
    picks.sort()
    size = width // len(picks)
    row = []
    for t, label in picks:
        i = int(np.argmin(np.abs(times - t)))
        tile = cv2.resize(frames[i][40:472, 40:472], (size, size), interpolation=cv2.INTER_AREA).copy()
        cv2.rectangle(tile, (0, 0), (size, 20), (255, 255, 255), -1)
        cv2.putText(tile, f"{times[i]:.2f}s {label}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
        row.append(tile)
    out = np.hstack(row)
    return np.hstack([out, np.full((out.shape[0], width - out.shape[1], 3), 255, np.uint8)])


if __name__ == "__main__":
    raise SystemExit(main())
