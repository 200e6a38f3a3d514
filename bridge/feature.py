"""What a bridge feature is (``Feature``) and the avatar id pattern every route checks: a leaf module.

app.py, config.py and every feature (preview.py, whep.py, ...) import these from here, so no feature imports the
app, and no feature imports another for a shared rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from bridge.openapi import Operation
from engine.options import Option

if TYPE_CHECKING:
    from bridge.app import Bridge

AVATAR_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # an avatar id as the engine makes them (and a client may name)


@dataclass(frozen=True)
class Feature:
    """What a module adds to the bridge without editing it (list it in bridge/features.py):

    - ``routes(bridge)``: its Starlette routes; they reach the engine through ``bridge.link``, read bodies with
      bridge.forms.read_body(request, limit, bridge.limits), and raise engine/errors.py's errors to refuse;
    - ``operations``: their OpenAPI rows (tests/service/test_openapi.py checks rows and routes agree);
    - ``options`` + ``settings``: its option table and the frozen dataclass it fills (fields and defaults equal,
      engine/options.py); parsed with the core's (one --help); read with ``bridge.settings_of(feature)``;
    - ``middleware``: Starlette ``Middleware`` entries, inside the metrics middleware;
    - ``lifespan(bridge)``: an async context manager entered after the engine link starts, left before it closes.
    """

    name: str
    routes: Callable[[Bridge], Sequence[BaseRoute]] | None = None
    operations: Sequence[Operation] = ()
    options: Sequence[Option] = ()
    settings: type | None = None
    middleware: Sequence[Middleware] = ()
    lifespan: Callable[[Bridge], AbstractAsyncContextManager[None]] | None = None
