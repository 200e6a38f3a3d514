"""What each avatar was last told to look like, so that a failover or a drain rebuilds the same face.

An avatar's animator lives in one replica. The router sees every command that sets its look and, once the replica
has accepted it, keeps the result beside the avatar's photo in the placement. When the avatar is prepared again on
another replica, the mover (mover.py) replays the look there with no transition, before its stream resumes, so viewers
see the same expression, controls and idle life under the new ``epoch``. Speech, clips and keyframe schedules are
moments, not a look: they are not replayed (a client resends what it was saying).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine import protocol as p
from engine.animation.timeline import FACE_CONTROLS

LOOK_COMMANDS = ("set_expression", "set_controls", "set_idle")


@dataclass
class Look:
    """The last expression and idle setting as accepted, and every control value set since, merged."""

    expression: p.SetExpression | None = None
    idle: p.SetIdle | None = None
    controls: dict[str, float] = field(default_factory=dict)

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

    def copy(self) -> Look:
        return Look(self.expression, self.idle, dict(self.controls))

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
        return out
