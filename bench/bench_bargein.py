"""Barge-in figures on rendered frames: ``clear`` at random points of speech, the mouth and head read back by dlib.

For each of --n interruptions (seeded) of an espeak-ng sentence at a random time, with the 25 fps frame ticks at a
random phase against the clear, the offline renderer draws the face and dlib's 68 points (tests/speech/lipmeter.py,
tests/speech/headmeter.py) measure the inner-lip gap and the head pitch. Printed:

- time to a closed mouth: from the clear to the first frame whose lip gap is under SHUT (0.035 iod, as the speech
  tests), in ms and in frames (median, worst);
- the largest frame-to-frame change of the lip gap from the frame before the clear on, as a share of the full
  opening (the sentence's widest measured gap less the rest gap), and the largest among the frames after the clear
  (the fade alone: the step across the clear also holds up to 40 ms of speech, and speech alone moves the lips by up
  to ~3/4 of the full opening from one 25 fps frame to the next, printed too);
- the head: the measured pitch (idle off, so only speech moves it) MOTION_CLEAR_S + 40 ms after the clear.

Run: .venv/bin/python bench/bench_bargein.py [--n 20] [--seed 1] [--fade smoothstep80]
(--fade smoothstep80 puts back the old 80 ms smoothstep's shape, for comparison; the mouth still holds its shape at
the clear, which the old fade did not: that one measured worst 81%.) Needs espeak-ng. No assertions.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.animation import speech as speech_layer  # noqa: E402
from engine.animation.timeline import Animator, IdleConfig  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402
from engine.speech.audio import Pcm, decode_audio  # noqa: E402

TEXT = "Hello, my mom bought a puppy. Please be happy. The quick brown fox jumps over the lazy dog."
SHUT = 0.035  # iod: the lips read as closed (tests/speech/test_speech_render.py)
FPS = 25.0


def espeak(text: str, voice: str = "en") -> Pcm:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
        return decode_audio(wav.read_bytes())


def old_fade() -> None:
    """The fade before this bench: an 80 ms smoothstep (the issue's 78% step)."""
    speech_layer.CLEAR_S = 0.08
    speech_layer.SpeechLayer._gain = staticmethod(  # type: ignore[method-assign]
        lambda cleared, t: 1.0 if cleared is None else speech_layer._ease_out((t - cleared) / 0.08))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--voice", default="en")
    parser.add_argument("--fade", choices=["linear100", "smoothstep80"], default="linear100")
    args = parser.parse_args()
    if args.fade == "smoothstep80":
        old_fade()
    from tests.speech.headmeter import HeadMeter
    from tests.speech.lipmeter import LipMeter

    crop = FacePipeline.create(mode="dlib").crop(decode_image((ROOT / "tests" / "data" / "s1.jpg").read_bytes()))
    renderer = OfflineRenderer()
    source = renderer.prepare(crop)

    def draw(state: object) -> np.ndarray:
        return renderer.render(source, state)

    head = HeadMeter(LipMeter(crop.crop), draw)
    pcm = espeak(TEXT, args.voice)

    def fresh() -> Animator:
        a = Animator(IdleConfig(enabled=False), 0.0)
        a.speak(pcm, 0.0, 0.0)
        return a

    whole = fresh()
    gaps = [head.measure(draw(whole.sample(float(t))))[2] for t in np.arange(0.0, pcm.duration, 1.0 / FPS)]
    rest_pitch, _, rest = head.measure(draw(Animator(IdleConfig(enabled=False), 0.0).sample(0.0)))
    full = max(gaps) - rest
    rng = random.Random(args.seed)
    closed_ms, closed_frames, jumps, fade, settled, open_at = [], [], [], [], [], []
    settle_at = speech_layer.MOTION_CLEAR_S + 0.04
    for _ in range(args.n):
        c = rng.uniform(0.3, pcm.duration - 0.5)
        phase = rng.uniform(0.0, 1.0 / FPS)
        a = fresh()
        before = [c - 2.0 / FPS + phase, c - 1.0 / FPS + phase]  # the last frame before the clear, and one more
        measured = [head.measure(draw(a.sample(t))) for t in before]
        a.clear(c)
        after = [c + phase + k / FPS for k in range(6)]
        measured += [head.measure(draw(a.sample(t))) for t in after]
        gap = np.array([m[2] for m in measured])
        open_at.append((gap[1] - rest) / full)
        jumps.append(float(np.abs(np.diff(gap[1:])).max()) / full)
        fade.append(float(np.abs(np.diff(gap[2:])).max()) / full)
        k = next((i for i, g in enumerate(gap[2:]) if g < SHUT), None)
        closed_ms.append(math.inf if k is None else 1000.0 * (after[k] - c))
        closed_frames.append(math.inf if k is None else k + 1)
        settled.append(abs(head.measure(draw(a.sample(c + settle_at)))[0] - rest_pitch))
    print(f"barge-in, {args.n} clears at random points of a {pcm.duration:.1f} s espeak-ng {args.voice} sentence, "
          f"25 fps at a random phase, fade {args.fade}; offline renderer, dlib 68 points, s1.jpg")
    print(f"  full opening {full:.3f} iod (rest gap {rest:.3f}); mouth open at the clear: median "
          f"{statistics.median(open_at):.0%} of full")
    print(f"  time to a closed mouth: median {statistics.median(closed_ms):.0f} ms, worst {max(closed_ms):.0f} ms "
          f"(frames after the clear: median {statistics.median(closed_frames):.0f}, worst {max(closed_frames)})")
    print(f"  largest frame-to-frame mouth change from the frame before the clear: median "
          f"{statistics.median(jumps):.0%}, worst {max(jumps):.0%} of the full opening; among the frames after it: "
          f"median {statistics.median(fade):.0%}, worst {max(fade):.0%}")
    speech_steps = np.abs(np.diff(gaps)) / full
    print(f"  (speech alone at 25 fps: largest frame-to-frame change {speech_steps.max():.0%}, "
          f"95th percentile {np.percentile(speech_steps, 95):.0%} of the full opening)")
    print(f"  head pitch {settle_at * 1000:.0f} ms after the clear (speech motion only), from rest: median "
          f"{statistics.median(settled):.2f} deg, worst {max(settled):.2f} deg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
