"""Moving avatars to another replica (after a death, or off a draining one), on threads of their own, so the
reconcile loop (service.py) never waits for one.

Each avatar moves on its own: pick the least-loaded live replica, prepare it there from the kept photo
(``set_source``), replay its look (look.py) with no transition, point its commands there (``place``, ``epoch`` + 1),
resume its stream, and for a drain stop the stream on the old replica. Every one of those commands is checked: a
failure is logged and the command sent again (``TRIES`` times); a target that fails to prepare it, or dies before
it is placed, is given up for another replica. An avatar with no photo kept, or no replica to take it, is forgotten
(a client's next ``set_source`` places it again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.cluster.placement import Moved, Placement
from engine.cluster.router import Router

log = logging.getLogger(__name__)

MOVE_TIMEOUT_S = 60.0  # preparing one avatar again (decode, detect, prepare) on a loaded machine
CALL_TIMEOUT_S = 10.0  # a replayed look or stream command
TRIES = 3  # each command, and each avatar over targets
RETRY_PAUSE_S = 0.2
MAX_PARALLEL = 8  # avatars prepared at once per move (each replica prepares on its own prep thread)


class Mover:
    def __init__(self, placement: Placement, router: Router) -> None:
        self.placement, self.router = placement, router
        self.failovers: list[dict[str, Any]] = []  # one entry per replica lost: what moved, how long it took
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, moved: list[Moved], old: str, drain: bool,
              done: Callable[[dict[str, str]], None] | None = None) -> None:
        """Move ``moved`` off ``old`` on a new thread; ``done(avatar -> new replica)`` when every one is settled."""
        began = time.monotonic()

        def job() -> None:
            homes = self.move(moved, old, drain)
            if not drain:
                self.failovers.append({"replica": old, "avatars": [m.avatar for m in moved], "placed": homes,
                                       "seconds": time.monotonic() - began})
            if done is not None:
                done(homes)

        thread = threading.Thread(target=job, name=f"cluster-move-{old}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def busy(self) -> bool:
        """Avatars are being moved."""
        return any(t.is_alive() for t in self._threads)

    def halt(self) -> None:
        """No new tries from here on (the cluster is stopping)."""
        self._stopping.set()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=5)

    def move(self, moved: list[Moved], old: str, drain: bool) -> dict[str, str]:
        """Every avatar of ``moved``, in parallel; avatar -> its new replica (the ones placed)."""
        if not moved:
            return {}
        with ThreadPoolExecutor(min(len(moved), MAX_PARALLEL), thread_name_prefix="cluster-move") as pool:
            homes = list(pool.map(lambda m: self.move_one(m, old, drain), moved))
        return {m.avatar: home for m, home in zip(moved, homes, strict=True) if home is not None}

    def move_one(self, m: Moved, old: str, drain: bool) -> str | None:
        refused: set[str] = {old}
        for _ in range(TRIES):
            if self._stopping.is_set():
                return None
            target = self._target(m, refused)
            if target is None:
                return None
            self.placement.moving(m.avatar, target)
            if not self._checked(target, {"cmd": "set_source", "image": m.image}, MOVE_TIMEOUT_S, tries=1):
                refused.add(target)
                continue
            look = self.placement.look(m.avatar)
            for message in look.messages(m.avatar) if look else []:
                self._checked(target, message)  # a face slightly off beats no face: logged, the move goes on
            epoch = m.epoch + 1
            if not self.placement.place(m.avatar, target, epoch, m.fps):
                log.warning("replica %s went away while avatar %s moved there; trying another", target, m.avatar)
                refused.add(target)
                continue
            log.info("avatar %s placed on replica %s (epoch %d)", m.avatar, target, epoch)
            if m.fps > 0:
                framing = look.stream_fields() if look else {}
                self._checked(target, {"cmd": "stream", "avatar": m.avatar, "fps": m.fps, "epoch": epoch, **framing})
                if drain:
                    self._checked(old, {"cmd": "stream", "avatar": m.avatar, "fps": 0})
            return target
        log.error("avatar %s could not be placed again after %d tries; forgotten", m.avatar, TRIES)
        self.placement.forget(m.avatar)
        return None

    def _target(self, m: Moved, refused: set[str]) -> str | None:
        """The least-loaded live replica not refused yet; None (the avatar forgotten) when there is none."""
        target = self.placement.least_loaded(exclude=refused)
        if target is None or m.image is None:
            log.error("avatar %s cannot be placed again (%s)", m.avatar,
                      "no replica left" if target is None else "its photo is no longer kept")
            self.placement.forget(m.avatar)
            return None
        return target

    def _checked(self, replica: str, message: dict[str, Any], timeout_s: float = CALL_TIMEOUT_S,
                 tries: int = TRIES) -> bool:
        """Send ``message`` to ``replica`` until it is answered ok; False (logged) when every try failed."""
        for attempt in range(1, tries + 1):
            try:
                self.router.call(replica, message, timeout_s).result(timeout=timeout_s + 5)
                return True
            except Exception as exc:
                log.warning("%s for avatar %s on replica %s failed (try %d of %d): %s", message["cmd"],
                            message.get("avatar", "-"), replica, attempt, tries, exc)
            if self._stopping.wait(RETRY_PAUSE_S):
                break
        log.error("%s for avatar %s on replica %s failed %d times; going on without it", message["cmd"],
                  message.get("avatar", "-"), replica, tries)
        return False
