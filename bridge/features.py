"""The features ``python -m bridge`` serves, in order. A new module (WHEP, ...) defines its ``Feature``
(bridge/feature.py) and adds it here: its routes, OpenAPI rows, options (in --help and the README), middleware and
start/stop work come with it, and the core (app.py, config.py) stays as it is."""

from __future__ import annotations

from bridge.feature import Feature
from bridge.preview import PREVIEW
from bridge.whep import WHEP

FEATURES: tuple[Feature, ...] = (PREVIEW, WHEP)
