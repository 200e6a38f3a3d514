"""Per-avatar animation over time: transitions, schedules (lip-sync), clear, smoothing and idle life.

Pure state machine: no I/O, no threads, no torch. Times are engine seconds (the engine's time.monotonic()).
Layers, bottom to top, each continuous in value and velocity:

1. commanded: every control follows a cubic Hermite segment from its value and velocity at the last
   command to the new target (ease in/out from rest; a retarget mid-way keeps value and velocity);
2. release: after ``clear`` or a replaced schedule, an offset that eases from what the face was doing back to 0;
3. schedule: keyframes sampled at frame time, blended in over BLEND_IN_S, and eased back to the commanded
   state over RETURN_S after the last keyframe;
4. idle life (engine.animation.idle): blinks close the lids over whatever is commanded (a commanded closed
   eye stays closed), sway and gaze add small offsets. Final values are clamped to the control ranges.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.animation.arkit import parse_controls
from engine.animation.controls import BY_NAME, NAMES, NEUTRAL
from engine.animation.easing import Segment
from engine.animation.filters import OneEuroBank, OneEuroConfig
from engine.animation.idle import IdleConfig, IdleLife
from engine.animation.marks import Mark, MarkQueue
from engine.animation.presets import preset_controls, validate_expression, validate_intensity
from engine.animation.speech import SpeechLayer, SpeechSpan, validate_speech_motion
from engine.animation.state import AnimationState
from engine.animation.turn import Turn
from engine.errors import BadRequest
from engine.speech.audio import Pcm

__all__ = ["Animator", "IdleConfig", "Keyframe", "Segment", "DEFAULT_TRANSITION_MS"]

DEFAULT_TRANSITION_MS = 250.0
MAX_TRANSITION_MS = 10_000.0
MIN_TRANSITION_S = 0.08  # even a "jump" (transition_ms 0) eases over this: bounds the frame-to-frame step
BLEND_IN_S = 0.08  # a schedule blends in over this before its first keyframe
RETURN_S = 0.25  # after the last keyframe or a clear, the face eases back to the commanded state over this
IDLE_FADE_S = 0.5  # idle life turned off (or reconfigured) fades out over this
# reset by set_expression: every blendshape weight, and the two signed mouth/jaw shifts (not the head, not the gaze)
FACE_CONTROLS = tuple(n for n in NAMES if BY_NAME[n].unit == "weight" or n in ("mouthX", "jawX"))
_DERIV_H = 1e-3


def max_rate(name: str) -> float:
    """The largest start velocity a segment keeps (units/s): bounds the step per frame (docs/animation.md)."""
    c = BY_NAME[name]
    return 1.5 * (c.maximum - c.minimum) / MIN_TRANSITION_S


@dataclass(frozen=True)
class Keyframe:
    t: float  # engine time, seconds (time.monotonic() of the engine process)
    controls: dict[str, float] = field(default_factory=dict)


def _smoothstep(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * (3.0 - 2.0 * s)


class _Track:
    """One control's keyframes: linear or monotone cubic (Fritsch-Carlson: smooth, never overshoots)."""

    def __init__(self, times: list[float], values: list[float], smooth: bool) -> None:
        self.times, self.values = times, values
        self.slopes: list[float] | None = None
        if smooth and len(times) > 1:
            secants = [(values[i + 1] - values[i]) / (times[i + 1] - times[i]) for i in range(len(times) - 1)]
            # zero slope at both ends: the track holds its first and last values, so entering and leaving it is C1
            slopes = [0.0] + [
                0.0 if a * b <= 0 else (a + b) / 2 for a, b in zip(secants, secants[1:], strict=False)
            ] + [0.0]
            for i, sec in enumerate(secants):
                if sec == 0.0:
                    slopes[i] = slopes[i + 1] = 0.0
                    continue
                a, b = slopes[i] / sec, slopes[i + 1] / sec
                norm = a * a + b * b
                if norm > 9.0:
                    k = 3.0 / math.sqrt(norm)
                    slopes[i], slopes[i + 1] = k * a * sec, k * b * sec
            self.slopes = slopes

    def at(self, t: float) -> float:
        times, values = self.times, self.values
        if t <= times[0]:
            return values[0]
        if t >= times[-1]:
            return values[-1]
        i = bisect.bisect_right(times, t) - 1
        t0, t1 = times[i], times[i + 1]
        d = t1 - t0
        s = (t - t0) / d
        if self.slopes is None:
            return values[i] + s * (values[i + 1] - values[i])
        return Segment(t0, d, values[i], self.slopes[i], values[i + 1]).at(t)[0] + _hermite_end_slope(
            s, d, self.slopes[i + 1])


def _hermite_end_slope(s: float, d: float, v1: float) -> float:
    """The h11 term Segment leaves out (it always ends at rest): the end-slope part of a general Hermite."""
    return (s * s * s - s * s) * d * v1


@dataclass(frozen=True)
class _Schedule:
    tracks: dict[str, _Track]
    ramp_start: float
    ramp_end: float
    last: float

    def alpha(self, t: float) -> float:
        if t >= self.ramp_end:
            return 1.0
        return _smoothstep((t - self.ramp_start) / (self.ramp_end - self.ramp_start))


@dataclass(frozen=True)
class _Release:
    """Per-control offsets easing from (offset, velocity) at t0 back to 0 over duration."""

    t0: float
    duration: float
    offsets: dict[str, tuple[float, float]]

    @property
    def end(self) -> float:
        return self.t0 + self.duration

    def at(self, name: str, t: float) -> float:
        start = self.offsets.get(name)
        if start is None or t >= self.end:
            return 0.0
        return Segment(self.t0, self.duration, start[0], start[1], 0.0).at(t)[0]


def _validate_transition(transition_ms: object) -> float:
    if isinstance(transition_ms, bool) or not isinstance(transition_ms, numbers.Real):
        raise BadRequest(f"transition_ms must be a number in 0..{MAX_TRANSITION_MS:g}")
    ms = float(transition_ms)
    if not math.isfinite(ms) or not 0.0 <= ms <= MAX_TRANSITION_MS:
        raise BadRequest(f"transition_ms is {ms:g}, outside its range 0..{MAX_TRANSITION_MS:g}")
    return max(ms / 1000.0, MIN_TRANSITION_S)


class Animator:
    """Pure state machine: no I/O, no threads, no torch. Times are engine seconds (time.monotonic())."""

    def __init__(self, idle: IdleConfig | None = None, now: float = 0.0, *, smooth: bool = False,
                 filter_config: OneEuroConfig | None = None, interpolation: str = "linear") -> None:
        """``smooth``: One-Euro filter every set_controls (else only those asking); ``interpolation`` of
        keyframes: "linear" or "smooth" (monotone cubic)."""
        if interpolation not in ("linear", "smooth"):
            raise BadRequest(f"interpolation must be 'linear' or 'smooth', got {interpolation!r}")
        self.expression = "neutral"
        self.intensity = 0.0
        self.smooth = smooth
        self.interpolation = interpolation
        self._filters = OneEuroBank(filter_config)
        self._preset: dict[str, float] = dict(NEUTRAL)
        self._explicit: dict[str, float] = {}
        self._segments: dict[str, Segment] = {n: Segment.constant(0.0, now) for n in NAMES}
        self._release: _Release | None = None
        self._schedule: _Schedule | None = None
        self._idle_config = idle if idle is not None else IdleConfig()
        self._idle: IdleLife | None = IdleLife(self._idle_config, now) if self._idle_config.enabled else None
        self._fading: tuple[IdleLife, float] | None = None  # (life, fade start)
        self._speech = SpeechLayer()
        self.turn = Turn(now)  # turn state and listening (engine.animation.turn): the handlers drive it
        self._marks = MarkQueue()

    # -- commands -----------------------------------------------------------------------------------------

    def set_expression(self, expression: str, intensity: float, transition_ms: float = DEFAULT_TRANSITION_MS,
                       now: float = 0.0) -> None:
        """Ease to a preset. Explicit face controls are dropped (the preset owns the face); head and gaze stay."""
        preset = preset_controls(validate_expression(expression), validate_intensity(intensity))
        duration = _validate_transition(transition_ms)
        self._apply_marks(now)
        self.expression, self.intensity = expression, float(intensity)
        self._preset = preset
        for name in FACE_CONTROLS:
            self._explicit.pop(name, None)
        self._retarget(NAMES, duration, now)

    def set_controls(self, values: Mapping[str, float], transition_ms: float = DEFAULT_TRANSITION_MS,
                     now: float = 0.0, smooth: bool | None = None) -> None:
        """Ease named controls to values (others keep theirs). ``smooth`` One-Euro filters a noisy stream.

        ARKit blendshape names are accepted (engine.animation.arkit); the ones no renderer shows are ignored here
        (the protocol reports them with ``parse_controls``)."""
        checked, _ = parse_controls(values)
        duration = _validate_transition(transition_ms)
        self._apply_marks(now)
        if self.smooth if smooth is None else smooth:
            for name, value in checked.items():
                c = BY_NAME[name]
                checked[name] = c.clamp(self._filters.filter(name, value, now, c.maximum - c.minimum))
        self._explicit.update(checked)
        self._retarget(tuple(checked), duration, now)

    def schedule(self, keyframes: Sequence[Keyframe], now: float) -> None:
        """Follow keyframes at their engine times; after the last, ease back to the commanded state.

        Replaces any running schedule (smoothly). Keyframes entirely in the past do nothing.
        """
        frames = sorted(keyframes, key=lambda k: float(k.t))  # stable: equal times keep their order
        checked: list[tuple[float, dict[str, float]]] = []
        for i, frame in enumerate(frames):
            t = frame.t
            if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(float(t)):
                raise BadRequest(f"keyframes[{i}].t must be a finite engine time in seconds")
            checked.append((float(t), parse_controls(frame.controls)[0]))
        self._interrupt(now)
        if not checked or checked[-1][0] <= now:
            return
        series: dict[str, dict[float, float]] = {}
        for t, controls in checked:
            for name, value in controls.items():
                series.setdefault(name, {})[t] = value  # a later keyframe at the same time wins (a step)
        smooth = self.interpolation == "smooth"
        tracks = {name: _Track(sorted(pts), [pts[t] for t in sorted(pts)], smooth) for name, pts in series.items()}
        first, last = checked[0][0], checked[-1][0]
        ramp_start = max(now, first - BLEND_IN_S)
        ramp_end = max(first, ramp_start + MIN_TRANSITION_S / 2)
        self._schedule = _Schedule(tracks, ramp_start, min(ramp_end, last), last)

    def clear(self, now: float) -> None:
        """Interrupt a schedule and speech (barge-in, like a LiveKit avatar's clear_buffer): the face eases back
        to the commanded state, the mouth shut within 100 ms."""
        self._apply_marks(now)
        self._interrupt(now)
        self._speech.clear(now)
        self._marks.drop()  # what is not heard carries no expression
        self.turn.set("listening", now)  # a barge-in: the user has the turn

    def speak(self, audio: Pcm, now: float, start: float | None = None, append: bool = False,
              speech_motion: float | None = None, marks: Sequence[Mark] = ()) -> SpeechSpan:
        """Lip-sync audio heard from ``start`` (default now); ``append`` continues the utterance (engine.animation
        .speech). The mouth, and the head, brow and blink motion the voice drives (gain ``speech_motion``, None:
        the avatar's), are added on top of the expression; idle life goes on. ``marks`` (engine.animation.marks)
        are placed at this audio's start plus their offsets."""
        self._apply_marks(now)
        span = self._speech.speak(audio, now, start, append, speech_motion)
        self._marks.place(tuple(marks), span.start)
        self.turn.speaking(span.start, span.end, now)
        return span

    @property
    def speech_motion(self) -> float:
        return self._speech.speech_motion

    def set_speech_motion(self, speech_motion: float) -> None:
        """The default gain of speech-driven head, brow and blink motion (0 = lips only), also for the speech that
        is playing unless it named its own."""
        self._speech.speech_motion = validate_speech_motion(speech_motion)

    def set_idle(self, idle: IdleConfig, now: float) -> None:
        """Change idle life. The same config keeps running undisturbed; a new one fades the old out."""
        if idle == self._idle_config:
            return
        if self._idle is not None:
            self._fading = (self._idle, now)
        self._idle_config = idle
        self._idle = IdleLife(idle, now) if idle.enabled else None

    # -- sampling -----------------------------------------------------------------------------------------

    def sample(self, t: float) -> AnimationState:
        """Every control's value at frame time t, clamped to its range."""
        self._apply_marks(t)
        values = {name: self._face(name, t) for name in NAMES}
        for name, offset in self._speech.offsets(t).items():
            values[name] += offset
        for name, offset in self.turn.offsets(t).items():
            values[name] += offset
        self._add_idle(values, t)
        controls = {}
        for name in NAMES:
            c = BY_NAME[name]
            controls[name] = c.clamp(values[name]) + 0.0
        return AnimationState(expression=self.expression, intensity=self.intensity, controls=controls)

    def is_static(self, t: float) -> bool:
        """True when the state cannot change after t without a new command (cacheable, no idle)."""
        if any(seg.end > t for seg in self._segments.values()):
            return False
        if self._release is not None and self._release.end > t:
            return False
        if self._schedule is not None and self._schedule.last + RETURN_S > t:
            return False
        if self._fading is not None and self._fading[1] + IDLE_FADE_S > t:
            return False
        wander = self._idle is not None and self._idle.config.gaze
        if self._speech.active(t) or len(self._marks) or self.turn.active(t, wander=wander):
            return False
        return self._idle is None or self._idle.config.is_still

    @property
    def idle_config(self) -> IdleConfig:
        return self._idle_config

    # -- internals ----------------------------------------------------------------------------------------

    def _apply_marks(self, t: float) -> None:
        """Marks due by t, applied as the commands they stand for, issued at their own times."""
        for at, mark in self._marks.due(t):
            ms = DEFAULT_TRANSITION_MS if mark.transition_ms is None else mark.transition_ms
            self.set_expression(mark.expression, mark.intensity, ms, at)
            if mark.controls:
                self.set_controls(mark.controls, ms, at)

    def _target(self, name: str) -> float:
        return self._explicit.get(name, self._preset[name])

    def _retarget(self, names: Sequence[str], duration: float, now: float) -> None:
        for name in names:
            seg = self._segments[name]
            target = self._target(name)
            if seg.p1 == target:
                continue  # already there or on the way: a repeated command does not restart the ease
            value, velocity = seg.at(now)
            limit = max_rate(name)
            velocity = min(limit, max(-limit, velocity))
            self._segments[name] = Segment(now, duration, value, velocity, target)

    def _commanded(self, name: str, t: float) -> float:
        value = self._segments[name].at(t)[0]
        if self._release is not None:
            value += self._release.at(name, t)
        return value

    def _blended(self, name: str, t: float, schedule: _Schedule) -> float:
        base = self._commanded(name, t)
        return base + schedule.alpha(t) * (schedule.tracks[name].at(t) - base)

    def _face(self, name: str, t: float) -> float:
        """Commanded + release + schedule, before idle and clamping."""
        schedule = self._schedule
        if schedule is None or name not in schedule.tracks or t <= schedule.ramp_start:
            return self._commanded(name, t)
        if t <= schedule.last:
            return self._blended(name, t, schedule)
        # after the last keyframe the track holds its last value; ease the offset from the commanded state back
        # to 0, starting with the velocity that keeps the held value still (so the output's velocity is continuous)
        end = schedule.last
        base, base_velocity = self._segments[name].at(end)
        offset = self._blended(name, end, schedule) - base
        return self._segments[name].at(t)[0] + Segment(end, RETURN_S, offset, -base_velocity, 0.0).at(t)[0]

    def _interrupt(self, now: float) -> None:
        """Fold a running schedule and release into one fresh release from now (continuous value and velocity)."""
        schedule, release = self._schedule, self._release
        active_schedule = schedule is not None and now < schedule.last + RETURN_S and now > schedule.ramp_start
        active_release = release is not None and now < release.end
        if not active_schedule and not active_release:
            self._schedule, self._release = None, None
            return
        offsets = {}
        for name in NAMES:
            value = self._face(name, now) - self._segments[name].at(now)[0]
            before = self._face(name, now - _DERIV_H) - self._segments[name].at(now - _DERIV_H)[0]
            if value or before:
                limit = max_rate(name)
                offsets[name] = (value, min(limit, max(-limit, (value - before) / _DERIV_H)))
        self._schedule = None
        self._release = _Release(now, RETURN_S, offsets) if offsets else None

    def _add_idle(self, values: dict[str, float], t: float) -> None:
        gaze_gain = self.turn.gaze_gain(t)  # listening and thinking hold their own gaze: the wander is damped
        sway_gain = self.turn.sway_gain(t)  # a listener holds its head still (its nods show)
        layers: list[tuple[IdleLife, float]] = []
        if self._idle is not None:
            layers.append((self._idle, 1.0))
        if self._fading is not None:
            life, since = self._fading
            gain = 1.0 - _smoothstep((t - since) / IDLE_FADE_S)
            if gain > 0.0:
                layers.append((life, gain))
        for life, gain in layers:
            for name, offset in life.offsets(t).items():
                if name == "eyeBlink":
                    # a blink closes the lids over whatever is commanded: never opens an eye commanded closed
                    closure = min(1.0, max(0.0, values[name]))
                    values[name] = closure + (1.0 - closure) * gain * offset
                elif name in ("gazeX", "gazeY"):
                    values[name] += gain * gaze_gain * offset
                elif name in ("headPitch", "headYaw", "headRoll"):
                    values[name] += gain * sway_gain * offset
                else:
                    values[name] += gain * offset
