"""What each avatar was last told to look like, so that a failover or a drain rebuilds the same face.

An avatar's animator lives in one replica. The router sees every command that sets its look and, once the replica
has accepted it, keeps the result beside the avatar's photo in the placement. When the avatar is prepared again on
another replica, the mover (mover.py) replays the look there with no transition, before its stream resumes, so viewers
see the same expression, controls, idle life, speech-motion gain, turn state and stream framing under the new
``epoch``. Speech, clips and keyframe schedules are moments, not a look: they are not replayed (a client resends what
it was saying), and so is ``speaking``, a turn that only lasts while its speech plays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine import protocol as p
from engine.animation.timeline import FACE_CONTROLS

LOOK_COMMANDS = ("set_expression", "set_controls", "set_idle", "set_speech_motion", "set_turn")


@dataclass
class Look:
    """The last expression, idle setting, speech-motion gain, turn and stream framing as accepted, and every control
    value set since, merged."""

    expression: p.SetExpression | None = None
    idle: p.SetIdle | None = None
    controls: dict[str, float] = field(default_factory=dict)
    speech_motion: float | None = None
    turn: p.SetTurn | None = None
    framing: p.Framing = p.FULL

    def apply(self, req: p.Request) -> None:
        """Follow one accepted command, with the engine's own rule: an expression resets the face's controls."""
        if isinstance(req, p.SetExpression):
            self.expression = req
            for name in FACE_CONTROLS:
                self.controls.pop(name, None)
        elif isinstance(req, p.SetControls):
            self.controls.update(req.controls)  # names already ours (ARKit names mapped by the protocol)
        elif isinstance(req, p.SetIdle):
            self.idle = req
        elif isinstance(req, p.SetSpeechMotion):
            self.speech_motion = req.speech_motion
        elif isinstance(req, p.SetTurn):
            self.turn = req if req.state != "speaking" else None
        elif isinstance(req, p.Stream):
            self.framing = req.framing

    def copy(self) -> Look:
        return Look(self.expression, self.idle, dict(self.controls), self.speech_motion, self.turn, self.framing)

    def stream_fields(self) -> dict[str, Any]:
        """The framing fields of the avatar's stream command (none for the full photo at its own size)."""
        f = self.framing
        if not f.reframes:
            return {}
        return {"framing": f.kind, **({"width": f.width, "height": f.height} if f.width is not None else {})}

    def messages(self, avatar: str) -> list[dict[str, Any]]:
        """The commands that rebuild this look on a fresh replica, in the order that keeps its meaning."""
        out: list[dict[str, Any]] = []
        if self.expression is not None:
            out.append({"cmd": "set_expression", "avatar": avatar, "expression": self.expression.expression,
                        "intensity": self.expression.intensity, "transition_ms": 0})
        if self.controls:
            out.append({"cmd": "set_controls", "avatar": avatar, "controls": dict(self.controls), "transition_ms": 0})
        if self.idle is not None:
            idle: dict[str, Any] = {"cmd": "set_idle", "avatar": avatar, "enabled": self.idle.enabled}
            if self.idle.seed is not None:
                idle["seed"] = self.idle.seed
            out.append(idle)
        if self.speech_motion is not None:
            out.append({"cmd": "set_speech_motion", "avatar": avatar, "speech_motion": self.speech_motion})
        if self.turn is not None:
            out.append({"cmd": "set_turn", "avatar": avatar, "state": self.turn.state, "transition_ms": 0})
        return out
