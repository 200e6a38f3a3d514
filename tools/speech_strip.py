"""Render docs/speech_strip.png: the offline renderer's face speaking an espeak-ng sentence, frame by frame.

    python tools/speech_strip.py [--out docs/speech_strip.png] [--portrait tests/data/s1.jpg] [--text "..."]
                                 [--voices en+m3:25,en-us+f3:85]

Per voice (default a low male and a high female espeak-ng voice), a title and rows of lower-face tiles every
--step seconds, each labelled with its time, jawOpen and mouthLowerDown, and under each row the audio's loudness
(grey) with the controls (jawOpen red, mouthLowerDown orange, mouthPucker+mouthFunnel blue, mouthStretch green,
mouthPress+mouthRollLower purple) over the same span, so a reader can check that the mouth follows the words.
For the first voice, each row also has the upper face (brows, eyes, nose) at the same times and a plot of the
speech-driven head pose (headPitch red, headYaw green, headRoll blue, +-4 degrees; grey line 0) and brows
(browOuterUp purple, 0..1), with the syllable nuclei the prosody found (ticks: black stressed, purple accented).
Also writes the first voice's MP4 beside it with --mp4.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.animation.timeline import Animator, IdleConfig  # noqa: E402
from engine.clip import render_speech_clip  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402
from engine.speech.analysis import FeatureStream  # noqa: E402
from engine.speech.audio import decode_audio  # noqa: E402
from engine.speech.mouth import HOP_S  # noqa: E402
from engine.speech.prosody import analyse_prosody  # noqa: E402

TEXT = "Hello, my mom bought a puppy. Please be happy."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "speech_strip.png")
    parser.add_argument("--portrait", type=Path, default=ROOT / "tests" / "data" / "s1.jpg")
    parser.add_argument("--text", default=TEXT)
    parser.add_argument("--step", type=float, default=0.08, help="seconds between tiles")
    parser.add_argument("--per-row", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.4, help="how much of the sentence to show")
    parser.add_argument("--tile", type=int, default=136, help="tile width in pixels")
    parser.add_argument("--mp4", type=Path, default=None, help="also write the whole clip here")
    parser.add_argument("--voices", default="en+m3:25,en-us+f3:85", help="espeak-ng voice:pitch, comma separated")
    args = parser.parse_args(argv)

    face = FacePipeline.create(mode="dlib").crop(decode_image(args.portrait.read_bytes()))
    renderer = OfflineRenderer()
    source = renderer.prepare(face)
    blocks = []
    for spec in args.voices.split(","):
        voice, _, pitch = spec.partition(":")
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "s.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", pitch or "50", "-s", "120", "-w", str(wav), args.text],
                           check=True)
            pcm = decode_audio(wav.read_bytes())
        block = voice_block(args, face, renderer, source, pcm, motion=not blocks)
        title = np.full((22, block.shape[1], 3), 255, np.uint8)
        cv2.putText(title, f"espeak-ng voice {voice}, pitch {pitch or 50}: \"{args.text}\"", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        blocks += [title, block]
        if args.mp4 is not None and len(blocks) == 2:
            clip = render_speech_clip(pcm, lambda s: renderer.render(source, s), Animator(IdleConfig(seed=1), 0.0))
            args.mp4.write_bytes(clip)
            print(f"wrote {args.mp4} ({len(clip) // 1024} KB)")
    sheet = np.vstack(blocks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {sheet.shape[1]}x{sheet.shape[0]})")
    return 0


def voice_block(args: argparse.Namespace, face: object, renderer: OfflineRenderer, source: object,
                pcm: object, motion: bool = False) -> np.ndarray:
    """One voice's rows: tiles, labels and control curves (and, with ``motion``, the head pose and brows)."""
    animator = Animator(IdleConfig(enabled=False), 0.0)
    animator.speak(pcm, now=0.0, start=0.0)
    events = analyse_prosody(pcm.samples, pcm.sample_rate) if motion else []

    lm = face.crop_landmarks
    if len(lm) == 68:  # iBUG 68: the mouth is points 48-67
        cx, cy = lm[48:68, 0].mean(), lm[48:68, 1].mean()
        half = 1.6 * (lm[54, 0] - lm[48, 0])
    else:
        cx, cy, half = 256.0, 380.0, 110.0
    y0, y1 = int(max(0, cy - half * 0.6)), int(min(512, cy + half * 0.75))
    x0, x1 = int(max(0, cx - half * 0.9)), int(min(512, cx + half * 0.9))
    th = int(round(args.tile * (y1 - y0) / (x1 - x0)))

    level = FeatureStream(pcm.sample_rate).push(pcm.samples, last=True).level
    times = np.arange(0.0, min(args.seconds, pcm.duration), args.step)
    if len(lm) == 68:  # the upper face: brows to the nose tip
        uy0, uy1 = int(max(0, lm[19, 1] - 0.3 * (lm[45, 0] - lm[36, 0]))), int(lm[30, 1])
        ux0, ux1 = int(lm[0, 0] + 0.1 * (lm[16, 0] - lm[0, 0])), int(lm[16, 0] - 0.1 * (lm[16, 0] - lm[0, 0]))
    else:
        uy0, uy1, ux0, ux1 = 120, 330, 100, 412
    uh = int(round(args.tile * (uy1 - uy0) / (ux1 - ux0)))
    tiles, labels, uppers = [], [], []
    for t in times:
        state = animator.sample(float(t))
        frame = renderer.render(source, state)
        img = frame[y0:y1, x0:x1]
        uppers.append(cv2.resize(frame[uy0:uy1, ux0:ux1], (args.tile, uh), interpolation=cv2.INTER_AREA))
        tiles.append(cv2.resize(img, (args.tile, th), interpolation=cv2.INTER_AREA))
        labels.append(f"{t * 1000:.0f} j{state.controls['jawOpen']:.2f} l{state.controls['mouthLowerDown']:.2f}")

    rows = []
    tw = args.tile
    for r in range(0, len(tiles), args.per_row):
        row_tiles = tiles[r: r + args.per_row]
        row_tiles += [np.full_like(tiles[0], 255)] * (args.per_row - len(row_tiles))
        strip = np.hstack(row_tiles)
        label = np.full((16, strip.shape[1], 3), 255, np.uint8)
        for i, text in enumerate(labels[r: r + args.per_row]):
            cv2.putText(label, text, (i * tw + 3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
        plot = np.full((60, strip.shape[1], 3), 255, np.uint8)
        t0 = times[r] - args.step / 2
        span = args.step * args.per_row
        px = np.arange(strip.shape[1])
        tt = t0 + px / strip.shape[1] * span
        lv = np.interp(tt, np.arange(len(level)) * HOP_S, level, left=-100, right=-100)
        lv = np.clip((lv - (level.max() - 40)) / 40, 0, 1)
        for x, v in zip(px, lv, strict=True):
            cv2.line(plot, (int(x), 59), (int(x), int(59 - 55 * v)), (215, 215, 215), 1)
        curves = {("jawOpen",): (220, 30, 30), ("mouthLowerDown",): (240, 150, 20),
                  ("mouthPucker", "mouthFunnel"): (30, 60, 220), ("mouthStretch",): (20, 160, 40),
                  ("mouthPress", "mouthRollLower"): (150, 40, 190)}
        for names, colour in curves.items():
            vals = []
            for t in tt:
                c = animator.sample(float(t)).controls
                vals.append(sum(c[n] for n in names))
            pts = np.stack([px, 59 - 55 * np.clip(vals, 0, 1)], axis=1).astype(np.int32)
            cv2.polylines(plot, [pts], False, colour, 1, cv2.LINE_AA)
        for i in range(args.per_row):
            cv2.line(plot, (i * tw + tw // 2, 0), (i * tw + tw // 2, 4), (0, 0, 0), 1)
        rows += [label, strip, plot]
        if motion:
            row_up = uppers[r: r + args.per_row]
            row_up += [np.full_like(uppers[0], 255)] * (args.per_row - len(row_up))
            rows += [np.hstack(row_up), motion_plot(animator, events, tt, px, strip.shape[1], tw, args.per_row)]
    return np.vstack(rows)


def motion_plot(animator: Animator, events: list, tt: np.ndarray, px: np.ndarray, width: int, tw: int,
                per_row: int) -> np.ndarray:
    """The speech-driven head pose (+-4 degrees) and brows (0..1) over one row's span, nuclei as ticks."""
    plot = np.full((70, width, 3), 255, np.uint8)
    cv2.line(plot, (0, 35), (width - 1, 35), (200, 200, 200), 1)
    states = [animator.sample(float(t)).controls for t in tt]
    for name, colour in (("headPitch", (220, 30, 30)), ("headYaw", (20, 160, 40)), ("headRoll", (30, 60, 220))):
        vals = np.array([c[name] for c in states])
        pts = np.stack([px, 35 - 32 * np.clip(vals / 4.0, -1, 1)], axis=1).astype(np.int32)
        cv2.polylines(plot, [pts], False, colour, 1, cv2.LINE_AA)
    brow = np.array([c["browOuterUp"] for c in states])
    cv2.polylines(plot, [np.stack([px, 67 - 64 * np.clip(brow, 0, 1)], axis=1).astype(np.int32)], False,
                  (150, 40, 190), 1, cv2.LINE_AA)
    for e in events:
        if e.kind == "nucleus" and tt[0] <= e.t <= tt[-1]:
            x = int(np.searchsorted(tt, e.t))
            colour = (150, 40, 190) if e.accent > 0 else (0, 0, 0)
            cv2.line(plot, (x, 0), (x, 6 + int(8 * e.strength)), colour, 1)
    for i in range(per_row):
        cv2.line(plot, (i * tw + tw // 2, 66), (i * tw + tw // 2, 69), (0, 0, 0), 1)
    return plot


if __name__ == "__main__":
    raise SystemExit(main())
