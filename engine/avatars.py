"""Resident avatars: image hash -> the renderer's source state, its paste-back and its animation.

An avatar is prepared once per distinct photo (re-uploading the same bytes costs one sha256) and stays resident,
bounded by count and bytes; a streaming avatar is never evicted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from engine.animation.timeline import Animator
from engine.cache import ByteLRU
from engine.errors import UnknownAvatar
from engine.face.pasteback import PasteBack
from engine.framing import Views
from engine.render.base import SourceState

DEFAULT_ALIAS = "default"


def avatar_id(image: bytes) -> str:
    """The avatar id is the content hash of the uploaded bytes: the same photo is the same avatar."""
    return hashlib.sha256(image).hexdigest()[:16]


def nbytes(obj: object, _depth: int = 0) -> int:
    """Approximate resident size: the arrays and tensors reachable through dataclass fields."""
    if _depth > 4:
        return 0
    if isinstance(getattr(obj, "nbytes", None), int):  # numpy arrays, PasteBack
        return int(obj.nbytes)  # type: ignore[attr-defined]
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):  # a torch tensor, without importing torch
        return int(obj.element_size() * obj.nelement())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(nbytes(getattr(obj, f.name), _depth + 1) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return sum(nbytes(v, _depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(nbytes(v, _depth + 1) for v in obj)
    return 0


@dataclass
class Avatar:
    id: str
    source: SourceState
    paste: PasteBack
    animator: Animator
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards animator (command thread vs frame clock)
    views: Views = field(default_factory=Views)  # framed streams' paste-backs (render thread; engine/framing.py)

    @property
    def nbytes(self) -> int:
        return nbytes(self.source) + self.paste.nbytes + self.views.nbytes


class AvatarRegistry:
    """The bounded set of resident avatars. ``default`` names the bundled portrait once it is loaded.

    The default avatar and those ``pinned`` says are in use (streaming) are never evicted.
    """

    def __init__(self, max_avatars: int, max_bytes: int, pinned: Callable[[Hashable], bool]) -> None:
        self.default_id: str | None = None
        self._lru: ByteLRU[Avatar] = ByteLRU(max_bytes, lambda a: a.nbytes, max_entries=max_avatars,
                                             pinned=lambda key: key == self.default_id or pinned(key))

    def resolve(self, avatar: str | None) -> str:
        key = self.default_id if avatar in (None, DEFAULT_ALIAS) else avatar
        if key is None:
            raise UnknownAvatar("no default avatar is loaded yet")
        return key

    def get(self, avatar: str | None) -> Avatar:
        key = self.resolve(avatar)
        found = self._lru.get(key)
        if found is None:
            raise UnknownAvatar(f"unknown avatar {avatar!r}: send set_source with the image first")
        return found

    def find(self, avatar_id: str) -> Avatar | None:
        return self._lru.peek(avatar_id)

    def add(self, avatar: Avatar) -> list[Hashable]:
        return self._lru.put(avatar.id, avatar)

    def pop(self, avatar_id: str) -> Avatar | None:
        """Remove an avatar whatever it is (start-up replaces the default when the renderer changes)."""
        return self._lru.pop(avatar_id)

    def drop(self, avatar: str) -> Avatar:
        key = self.resolve(avatar)
        if key == self.default_id:
            raise UnknownAvatar("the default avatar cannot be dropped")
        found = self._lru.pop(key)
        if found is None:
            raise UnknownAvatar(f"unknown avatar {avatar!r}")
        return found

    def ids(self) -> list[str]:
        return [str(k) for k in self._lru.list_keys()]

    def stats(self) -> dict[str, float]:
        return self._lru.stats().as_dict()
