#!/usr/bin/env bash
# Prefetch the official weights into the models volume (a no-op when they are there and verified), then serve.
# Without network the engine still starts: auto mode falls back to the offline renderer and says so in /health.
set -euo pipefail
if [ "${LP_PREFETCH:-1}" = "1" ]; then
    python -m engine.models download --dir "${LP_MODELS_DIR:-/app/models}" \
        || echo "entrypoint: model download failed; the engine will fall back where it can (see /health)" >&2
fi
# CURVE keys for the ZMQ sockets: a server keypair and one for the bridge, made once (see engine/security.py).
if [ -n "${LP_CURVE_KEYS_DIR:-}" ] && [ ! -f "${LP_CURVE_KEYS_DIR}/server.key_secret" ]; then
    python -m engine.security generate "${LP_CURVE_KEYS_DIR}" bridge
fi
exec "$@"
