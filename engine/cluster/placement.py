"""Which avatar lives on which replica: the cluster's one table, and the only state a fault has to rebuild.

An avatar's id is the hash of its photo (engine/avatars.py), so the router knows where an upload belongs before any
engine has seen it: a known id goes to the replica that holds it, a new one to the least-loaded replica that is not
draining. The photo's bytes are kept (byte-bounded, least recently used first) so an avatar whose replica dies can be
prepared again elsewhere; its stream rate is kept so the stream resumes there, with ``epoch`` raised by one, and its
look (engine/cluster/look.py) so that it resumes with the same face.

Thread-safe (one lock): the router thread reads it per command, the reconcile loop and the movers change it on
faults and scaling.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from engine import protocol as p
from engine.cache import ByteLRU
from engine.cluster.look import Look


@dataclass
class ReplicaInfo:
    """One engine replica as operators see it in /status (``cluster.replicas``)."""

    id: str
    node: str
    pid: int
    command_addr: str
    frame_addr: str
    actor_pid: int = 0
    draining: bool = False
    streams: int = 0  # from its last health reply
    frames: int = 0  # frames published, from its last health reply
    stream_table: dict[str, dict[str, float]] = field(default_factory=dict)  # its health's `streams`
    turn_table: dict[str, str] = field(default_factory=dict)  # its health's `turns`: avatar -> turn state

    def take_health(self, reply: dict[str, Any]) -> None:
        """Its streams, turns and frame count from its last health reply."""
        self.stream_table = dict(reply.get("streams") or {})
        turns = reply.get("turns")
        self.turn_table = {str(a): str(t) for a, t in turns.items()} if isinstance(turns, dict) else {}
        self.streams = len(self.stream_table)
        self.frames = int((reply.get("frames") or {}).get("published", 0))

    def as_status(self, avatars: list[str]) -> dict[str, object]:
        return {"id": self.id, "node": self.node, "pid": self.pid, "actor_pid": self.actor_pid,
                "command_addr": self.command_addr, "frame_addr": self.frame_addr, "avatars": avatars,
                "streams": self.streams, "frames": self.frames, "draining": self.draining}


@dataclass
class Placed:
    """An avatar's home: ``replica`` None while it moves (commands for it answer busy, retry shortly)."""

    replica: str | None
    epoch: int = 0
    fps: float = 0.0  # its stream's rate on the wire (0: not streaming)
    ready: bool = False  # set_source answered ok there (until then a failure unplaces it)
    moving_to: str | None = None  # being prepared there (counts as its load, so moved avatars spread)
    look: Look = field(default_factory=Look)  # what it was told to look like (replayed where it moves)


@dataclass
class Moved:
    """What a mover (mover.py) needs to rebuild an avatar elsewhere."""

    avatar: str
    image: bytes | None
    fps: float
    epoch: int


@dataclass
class Placement:
    max_source_bytes: int = 256 << 20
    replicas: dict[str, ReplicaInfo] = field(default_factory=dict)
    avatars: dict[str, Placed] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: ByteLRU[bytes] = ByteLRU(self.max_source_bytes, len)

    # -- replicas --

    def add_replica(self, info: ReplicaInfo) -> None:
        with self._lock:
            self.replicas[info.id] = info

    def live(self) -> list[ReplicaInfo]:
        with self._lock:
            return list(self.replicas.values())

    def drain(self, replica: str) -> list[Moved]:
        """No new avatars on ``replica``; its avatars, to be moved (they keep answering there until they are)."""
        with self._lock:
            self.replicas[replica].draining = True
            return self._held(replica, unplace=False)

    def remove_replica(self, replica: str) -> list[Moved]:
        """The replica is gone: its avatars have no home until they are placed again (commands answer busy)."""
        with self._lock:
            self.replicas.pop(replica, None)
            return self._held(replica, unplace=True)

    def _held(self, replica: str, unplace: bool) -> list[Moved]:
        moved = []
        for aid, placed in self.avatars.items():
            if placed.replica == replica and placed.ready:
                moved.append(Moved(aid, self._sources.peek(aid), placed.fps, placed.epoch))
                if unplace:
                    placed.replica = None
        return moved

    def held_by(self, replica: str) -> list[str]:
        with self._lock:
            return [aid for aid, p in self.avatars.items() if p.replica == replica]

    def status(self) -> list[dict[str, object]]:
        with self._lock:
            return [info.as_status([a for a, p in self.avatars.items() if p.replica == rid])
                    for rid, info in self.replicas.items()]

    # -- avatars --

    def least_loaded(self, exclude: str | set[str] | None = None) -> str | None:
        """The replica with the fewest avatars that takes new ones (ties: the oldest replica), not in ``exclude``."""
        with self._lock:
            return self._least_loaded({exclude} if isinstance(exclude, str) else exclude or set())

    def _least_loaded(self, exclude: set[str] | frozenset[str] = frozenset()) -> str | None:
        counts = {rid: 0 for rid, info in self.replicas.items() if not info.draining and rid not in exclude}
        for placed in self.avatars.values():
            home = placed.moving_to or placed.replica
            if home in counts:
                counts[home] += 1
        return min(counts, key=lambda rid: counts[rid]) if counts else None

    def home_for_upload(self, avatar: str, image: bytes) -> str | None:
        """Where these bytes go: the avatar's replica, else the least-loaded one (placed now, ready once answered)."""
        with self._lock:
            self._sources.put(avatar, image)
            placed = self.avatars.get(avatar)
            if placed is not None and placed.replica is not None:
                return placed.replica
            if placed is not None:  # moving: a mover places it
                return None
            target = self._least_loaded()
            if target is not None:
                self.avatars[avatar] = Placed(target)
            return target

    def where(self, avatar: str) -> Placed | None:
        with self._lock:
            placed = self.avatars.get(avatar)
            return Placed(placed.replica, placed.epoch, placed.fps, placed.ready) if placed else None

    def confirm(self, avatar: str, replica: str, ok: bool) -> None:
        """set_source (or a render with an image) answered on ``replica``: keep the placement, or forget it."""
        with self._lock:
            placed = self.avatars.get(avatar)
            if placed is None or placed.replica != replica:
                return
            if ok:
                placed.ready = True
            elif not placed.ready:
                del self.avatars[avatar]
                self._sources.pop(avatar)

    def moving(self, avatar: str, target: str) -> None:
        """A mover prepares ``avatar`` on ``target`` (commands still go where they went, or wait)."""
        with self._lock:
            if avatar in self.avatars:
                self.avatars[avatar].moving_to = target

    def place(self, avatar: str, replica: str, epoch: int, fps: float) -> bool:
        """A mover moved ``avatar`` onto ``replica`` (its look goes with it); False when ``replica`` is gone."""
        with self._lock:
            if replica not in self.replicas:
                return False
            old = self.avatars.get(avatar)
            self.avatars[avatar] = Placed(replica, epoch, fps, ready=True, look=old.look if old else Look())
            return True

    def remember(self, avatar: str, req: p.Request) -> None:
        """A look command for ``avatar`` was accepted by its replica."""
        with self._lock:
            if avatar in self.avatars:
                self.avatars[avatar].look.apply(req)

    def look(self, avatar: str) -> Look | None:
        with self._lock:
            placed = self.avatars.get(avatar)
            return placed.look.copy() if placed else None

    def set_stream(self, avatar: str, fps: float) -> None:
        with self._lock:
            if avatar in self.avatars:
                self.avatars[avatar].fps = fps

    def forget(self, avatar: str) -> None:
        """drop_source, or an avatar that could not be placed again."""
        with self._lock:
            self.avatars.pop(avatar, None)
            self._sources.pop(avatar)
