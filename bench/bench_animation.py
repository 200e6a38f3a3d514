"""How much frame time the animation layer costs: Animator.sample, is_static and motion_delta per frame.

Run: .venv/bin/python bench/animation_bench.py [--seconds 60] [--fps 25]
Prints microseconds per call (CPU, single thread); no assertions.
"""

from __future__ import annotations

import argparse
import time

from engine.animation.timeline import Animator, IdleConfig, Keyframe
from engine.render.liveportrait.motion_map import motion_delta


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated seconds per case")
    parser.add_argument("--fps", type=float, default=25.0)
    args = parser.parse_args()
    frames = int(args.seconds * args.fps)
    dt = 1.0 / args.fps

    still = Animator(IdleConfig(enabled=False), 0.0)
    still.set_expression("happy", 0.8, 250, now=0.0)
    alive = Animator(IdleConfig(seed=1), 0.0)
    alive.set_expression("happy", 0.8, 250, now=0.0)
    talking = Animator(IdleConfig(seed=1), 0.0)
    talking.schedule([Keyframe(0.02 * i, {"jawOpen": (i % 7) / 7, "mouthFunnel": (i % 3) / 6})
                      for i in range(int(args.seconds / 0.02))], now=0.0)
    state = alive.sample(1.0)

    rows = [
        ("sample, static expression, idle off", per_call_us(lambda i: still.sample(i * dt), frames)),
        ("sample, idle on", per_call_us(lambda i: alive.sample(i * dt), frames)),
        ("sample, idle on + 50 Hz lip-sync schedule", per_call_us(lambda i: talking.sample(i * dt), frames)),
        ("is_static, idle on", per_call_us(lambda i: alive.is_static(i * dt), frames)),
        ("motion_delta (all 15 controls)", per_call_us(lambda i: motion_delta(state.controls), frames)),
        ("AnimationState.key", per_call_us(lambda i: state.key(), frames)),
    ]
    print(f"{frames} frames per case at {args.fps:g} fps")
    for label, us in rows:
        print(f"{label:45s} {us:8.1f} us/frame")


if __name__ == "__main__":
    main()
