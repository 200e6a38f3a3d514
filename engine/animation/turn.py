"""Turn states: idle, listening, thinking, speaking; each a small look that eases in and out over the expression.

Pure, no I/O. The state is set explicitly (``set_turn``) or implied by what happens (engine/handlers.py): a
``speak`` means speaking, and the end of that speech returns to idle unless the state was set again meanwhile;
user speech (``user_audio`` with talk in it, ``user_speech`` start) and ``clear`` mean listening.

What each state adds (offsets on top of the expression and speech; docs/animation.md, "Turn states"):
- listening: the eyes hold the camera (idle gaze wander damped to a fifth, head sway to a half) and the listener's
  backchannel
  (engine.animation.listener): nods in the user's pauses, brows at a question;
- thinking: a glance away and up (eyes and a little head) that comes partway back after ~1.2 s, a slight inner-brow
  raise, lips pressed lightly together;
- speaking and idle: nothing of their own (speech drives the face; idle life goes on).

Every state's weight eases (engine.animation.easing, the Animator's cubic Hermite) from where it is to 0 or 1, so
changes blend like expressions: a state set mid-way through another's ease continues from the current look and
speed, without a jump.
"""

from __future__ import annotations

from engine.animation.easing import Segment
from engine.animation.listener import Listener, ListenerConfig

STATES = ("idle", "listening", "thinking", "speaking")
DEFAULT_TURN_MS = 250.0  # as expressions (timeline.DEFAULT_TRANSITION_MS)
LISTEN_GAZE_GAIN = 0.2  # listening: the idle gaze wander is damped to this share (the eyes hold the camera) ...
LISTEN_SWAY_GAIN = 0.5  # ... and the idle head sway to this (an attentive listener holds still; the nods show)
THINK_GLANCE = (0.35, 0.45)  # thinking: gaze (x, y) of the glance away and up
THINK_HOLD_S = 1.2  # the glance holds this long, then comes back to a share of it
THINK_BACK_S = 0.6
THINK_REST = 0.35  # share of the glance kept after it comes back
THINK_HEAD = {"headPitch": 2.5, "headYaw": 2.5}  # degrees: the head follows the eyes a little (up, to the side)
THINK_FACE = {"browInnerUp": 0.2, "mouthPress": 0.15}


def _smoothstep(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * (3.0 - 2.0 * s)


class Turn:
    """One avatar's turn state and the look it adds; owns the avatar's Listener."""

    def __init__(self, now: float = 0.0, listener: ListenerConfig | None = None) -> None:
        self.state = "idle"
        self.since = now
        self.listener = Listener(listener)
        self._weights = {s: Segment.constant(1.0 if s == "idle" else 0.0, now)
                         for s in STATES}
        self._speaking_until: float | None = None  # an implied `speaking` returns to idle at this engine time
        self._thinking: tuple[float, float] = (now, now)  # the last thinking's start and end (its glance freezes)

    def set(self, state: str, now: float, transition_ms: float = DEFAULT_TURN_MS) -> None:
        """Ease to ``state`` (one of STATES; the protocol checked it) from whatever shows at ``now``."""
        self.settle(now)
        self._speaking_until = None
        self._go(state, now, max(transition_ms, 0.0) / 1000.0)

    def speaking(self, start: float, end: float, now: float) -> None:
        """A ``speak`` placed audio from start to end: speaking now, back to idle when it has been heard."""
        self.settle(now)
        if self.state != "speaking":
            self._go("speaking", now, DEFAULT_TURN_MS / 1000.0)
        self._speaking_until = end  # a replacing speak cuts the old audio; an appended chunk ends last

    def state_at(self, t: float) -> str:
        """The state at t (an implied speaking that has ended is idle)."""
        self.settle(t)
        return self.state

    def settle(self, t: float) -> None:
        """Apply an implied end of speaking that falls at or before t (at its own time: deterministic)."""
        until = self._speaking_until
        if until is not None and t >= until and self.state == "speaking":
            self._speaking_until = None
            self._go("idle", until, DEFAULT_TURN_MS / 1000.0)

    def weight(self, state: str, t: float) -> float:
        self.settle(t)
        return self._weights[state].at(t)[0]

    def gaze_gain(self, t: float) -> float:
        """How much of the idle gaze wander shows: listening and thinking hold their own gaze."""
        return 1.0 - (1.0 - LISTEN_GAZE_GAIN) * self.weight("listening", t) - self.weight("thinking", t)

    def sway_gain(self, t: float) -> float:
        """How much of the idle head sway shows: a listener holds still."""
        return 1.0 - (1.0 - LISTEN_SWAY_GAIN) * self.weight("listening", t)

    def offsets(self, t: float) -> dict[str, float]:
        """What the turn state adds at t (before clamping): thinking's glance and face, listening's backchannel."""
        out: dict[str, float] = {}
        listening = self.weight("listening", t)
        if listening > 0.0:
            for name, value in self.listener.offsets(t).items():
                out[name] = out.get(name, 0.0) + listening * value
        thinking = self.weight("thinking", t)
        if thinking > 0.0:
            start, end = self._thinking
            u = (t if self.state == "thinking" else min(t, end)) - start  # leaving, the glance fades as it was
            glance = 1.0 - (1.0 - THINK_REST) * _smoothstep((u - THINK_HOLD_S) / THINK_BACK_S)
            out["gazeX"] = out.get("gazeX", 0.0) + thinking * glance * THINK_GLANCE[0]
            out["gazeY"] = out.get("gazeY", 0.0) + thinking * glance * THINK_GLANCE[1]
            for name, value in THINK_HEAD.items():
                out[name] = out.get(name, 0.0) + thinking * value * (0.5 + 0.5 * glance)
            for name, value in THINK_FACE.items():
                out[name] = out.get(name, 0.0) + thinking * value
        return out

    def active(self, t: float, wander: bool = True) -> bool:
        """True while the turn's look may still change after t without a command (frames not cacheable).

        Idle and speaking look the same (nothing of their own), so only listening's and thinking's eases count, and
        listening's only where there is a gaze ``wander`` to damp."""
        self.settle(t)
        easing = ("listening", "thinking") if wander else ("thinking",)
        if any(self._weights[s].t0 + self._weights[s].duration > t for s in easing):
            return True
        if self.state == "thinking" and t < self.since + THINK_HOLD_S + THINK_BACK_S:
            return True
        return self.state == "listening" and self.listener.active(t)

    def _go(self, state: str, at: float, duration: float) -> None:
        if state == self.state:
            return
        if state == "thinking":
            self._thinking = (at, at)
        elif self.state == "thinking":
            self._thinking = (self._thinking[0], at)
        self.state, self.since = state, at
        for s in STATES:
            current, velocity = self._weights[s].at(at)
            target = 1.0 if s == state else 0.0
            if current == target and velocity == 0.0:
                self._weights[s] = Segment(at, 0.0, current, 0.0, target)
            else:  # a weight that has to move, or is still moving, eases on from where and how fast it goes
                self._weights[s] = Segment(at, max(duration, 1e-3), current, velocity, target)

